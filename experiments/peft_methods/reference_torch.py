"""The PyTorch side of peft_methods' reference comparison: all-MiniLM-L6-v2 fine-tuned with transformers (+ peft for
LoRA) on exactly our batches (the same loader, seed, order and padding as `configs/quickstart.py`), so that a gap
between the two sides is a gap of settings or implementation, not of data.

Two recipes:
  ours  the quickstart's settings: mean-pooled linear head at lr 1e-2, dropout off, AdamW weight decay 0.01 (not on
        biases, LayerNorm or embeddings), cosine schedule with 10 warm-up steps, gradient clipping at norm 1.
  hf    the transformers Trainer's defaults on AutoModelForSequenceClassification: BERT's pooler + dropout +
        classifier, dropout 0.1 (config.json: hidden and attention probabilities), one learning rate for
        everything, weight decay 0, linear decay to 0 without warm-up, gradient clipping at norm 1.
Both use the quickstart's per-method learning rate (5e-5 full, 2e-3 LoRA, 1e-2 head-only), batch 32, max length 64.

  python -m experiments.peft_methods.reference_torch --method=full --recipe=hf --seed=0 \\
      --out=experiments/peft_methods/results/torch/full_hf_seed0.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from configs import quickstart

METHODS = ("full", "head", "lora")  # configs/quickstart.py's method names


def quickstart_rates(method: str) -> tuple[float, float]:
  """(lr, the fresh head's lr) that configs/quickstart.py gives `method`; head-only trains at its head's rate."""
  c = quickstart.get_config(f"method={method},baselines=False")
  head_lr = c.optimizer.lr * dict(c.optimizer.lr_groups)[r"^head\."]
  return (head_lr if method == "head" else c.optimizer.lr), head_lr


class MeanPooled(torch.nn.Module):
  """BertModel + mean over unmasked positions + a linear head: our `head_style=mean`."""

  def __init__(self, encoder: transformers.BertModel, num_labels: int):
    super().__init__()
    self.bert = encoder
    self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)
    self.classifier.weight.data.normal_(0.0, encoder.config.initializer_range)
    self.classifier.bias.data.zero_()

  def forward(self, input_ids, attention_mask):
    h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    m = attention_mask[..., None].to(h.dtype)
    return self.classifier((h * m).sum(1) / m.sum(1).clamp(min=1.0))


def build(method: str, recipe: str, model_dir: str, num_labels: int) -> torch.nn.Module:
  if recipe == "hf":
    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)
  else:
    encoder = transformers.BertModel.from_pretrained(model_dir, hidden_dropout_prob=0.0,
                                                     attention_probs_dropout_prob=0.0, add_pooling_layer=False)
    model = MeanPooled(encoder, num_labels)
  if method == "lora":
    import peft
    cfg = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"],
                          modules_to_save=["classifier"])
    model = peft.get_peft_model(model, cfg)
  elif method == "head":
    for name, p in model.named_parameters():
      p.requires_grad = name.startswith("classifier.") or (recipe == "hf" and name.startswith("bert.pooler."))
  return model


def param_groups(model, method: str, recipe: str, lr: float, head_lr: float, weight_decay: float) -> list[dict]:
  """(decay, lr) groups: "ours" gives the head `head_lr`; biases, LayerNorm and embedding tables get no weight
  decay (train.optim's `no_decay`; with "hf" the decay is 0 anyway)."""
  groups: dict[tuple, list] = {}
  for name, p in model.named_parameters():
    if not p.requires_grad:
      continue
    head = "classifier" in name
    no_decay = name.endswith("bias") or "LayerNorm" in name or "_embeddings." in name
    key = (0.0 if no_decay else weight_decay, head_lr if recipe == "ours" and head and method != "head" else lr)
    groups.setdefault(key, []).append(p)
  return [{"params": ps, "weight_decay": wd, "lr": g_lr} for (wd, g_lr), ps in groups.items()]


def lr_factor(recipe: str, step: int, total: int, warmup: int) -> float:
  """The multiplier of each group's lr at `step` (0-based), as optax / transformers schedules give it."""
  if recipe == "hf":  # get_linear_schedule_with_warmup(0 warm-up)
    return max(0.0, (total - step) / total)
  if step < warmup:  # optax.join_schedules(linear 0 -> lr over warmup, cosine_decay over the rest)
    return step / warmup
  return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup)))


def evaluate(model, loader, first: int = 0) -> dict:
  """Accuracy over the split, and over its first `first` examples (our runs' periodic validation subset)."""
  model.eval()
  hits = []
  with torch.no_grad():
    for batch in loader:
      logits = model(input_ids=torch.from_numpy(batch["input_ids"]).long(),
                     attention_mask=torch.from_numpy(batch["attention_mask"]).long())
      logits = getattr(logits, "logits", logits)
      hits.extend(logits.argmax(-1).numpy() == batch["labels"])
  model.train()
  out = {"accuracy": float(np.mean(hits)), "n": len(hits)}
  if first:
    out[f"accuracy_first_{first}"] = float(np.mean(hits[:first]))
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--method", choices=METHODS, required=True)
  ap.add_argument("--recipe", choices=("ours", "hf"), required=True)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--lr", type=float, default=0.0, help="0: the quickstart's per-method rate")
  ap.add_argument("--out", required=True)
  args = ap.parse_args(argv)

  from lightft_jax import data
  from lightft_jax.train.build import build_tokenizer
  c = quickstart.get_config(f"steps={args.steps},baselines=False")
  torch.manual_seed(args.seed)
  task = data.get_task(c.task.name)
  tok = build_tokenizer(c.model)

  def loader(split: str, train: bool):
    return data.make_loader(task, split, tokenizer=tok, batch_size=c.batch_size, max_length=c.model.max_length,
                            seed=args.seed, shuffle=train, num_epochs=None if train else 1,
                            drop_remainder=train, padding=c.task.padding)

  model = build(args.method, args.recipe, c.model.name, task.num_labels)
  model.train()
  lr, head_lr = quickstart_rates(args.method)
  lr = args.lr or lr
  wd = c.optimizer.weight_decay if args.recipe == "ours" else 0.0
  groups = param_groups(model, args.method, args.recipe, lr, head_lr, wd)
  for g in groups:
    g["peak_lr"] = g["lr"]
  opt = torch.optim.AdamW(groups, betas=(c.optimizer.b1, c.optimizer.b2), eps=c.optimizer.eps)
  trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

  train, losses, t0 = loader("train", True), [], time.perf_counter()
  for step in range(args.steps):
    batch = next(train)
    for g in opt.param_groups:
      g["lr"] = g["peak_lr"] * lr_factor(args.recipe, step, args.steps, c.schedule.warmup_steps)
    out = model(input_ids=torch.from_numpy(batch["input_ids"]).long(),
                attention_mask=torch.from_numpy(batch["attention_mask"]).long())
    logits = getattr(out, "logits", out)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(batch["labels"]).long())
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], c.optimizer.clip_norm)
    opt.step()
    losses.append(loss.item())
  seconds = time.perf_counter() - t0

  result = {"method": args.method, "recipe": args.recipe, "seed": args.seed, "steps": args.steps, "lr": lr,
            "trainable_params": trainable, "ms_per_step": 1000 * seconds / args.steps,
            "train_loss_last50": float(np.mean(losses[-50:])),
            "validation": evaluate(model, loader("validation", False), c.task.eval_limit), "test": evaluate(model, loader("test", False)),
            "command": "python -m experiments.peft_methods.reference_torch " + " ".join(
                f"--{k}={v}" for k, v in vars(args).items()),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__},
            "device": f"{torch.get_num_threads()} CPU threads", "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                       time.gmtime())}
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
  print(json.dumps({k: result[k] for k in ("method", "recipe", "seed", "validation", "test", "ms_per_step")}))


if __name__ == "__main__":
  main()
