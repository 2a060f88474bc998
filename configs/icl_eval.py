"""Few-shot evaluation of a language model (lightft_jax.icl.run_icl_eval).

  python -m lightft_jax.main --config=configs/icl_eval.py:task=rotten_tomatoes,k=0+1+2+4+8 --workdir=runs/icl
Arguments: task, k ("+"-separated list), model (smollm2 | preset | checkpoint dir | .gguf), limit (queries),
seeds (how many), labels (gold | random | flipped), selection (random | balanced | knn), calibrate.
"""

import ml_collections

from lightft_jax.train.config_lib import parse_arg


def parse_ks(value) -> tuple[int, ...]:
  """8 -> (8,); "0+1+2" -> (0, 1, 2)."""
  if isinstance(value, int):
    return (value,)
  return tuple(int(v) for v in str(value).split("+") if v.strip())


def get_config(arg=None):
  a = parse_arg(arg, task="rotten_tomatoes", k="0+1+2+4+8", model="smollm2", limit=200, seeds=1, labels="gold",
                selection="random", calibrate=True)
  c = ml_collections.ConfigDict()
  c.job = "icl_eval"
  c.seed = 0
  c.model = ml_collections.ConfigDict(dict(name=a.model, tokenizer="", dtype="float32",
                                           overrides=ml_collections.ConfigDict()))
  c.task = ml_collections.ConfigDict(dict(name=a.task, options=ml_collections.ConfigDict(), data_dir="",
                                          split="test", demo_split="train", limit=a.limit, pool_limit=0))
  rotten = a.task.split("/")[0] == "rotten_tomatoes"  # either source: rotten_tomatoes(/snippets), /polarity
  c.prompt = ml_collections.ConfigDict(dict(
      input_template="Review: {text}\nSentiment:" if rotten else "",  # "": built from the task's text fields
      verbalizers=("negative", "positive") if rotten else (),  # (): the task's verbalizer / label names
      choice_scored=True,  # False: score generated answers with the task metric
      label_delimiter=" ", example_delimiter="\n\n", instruction="", answer_field="label"))
  c.icl = ml_collections.ConfigDict(dict(
      ks=parse_ks(a.k), seeds=tuple(range(a.seeds)), selection=a.selection, label_mode=a.labels,
      order="as_selected", per_query_demos=False, calibrate=a.calibrate,
      content_free_inputs=("N/A", "", "[MASK]"), add_bos="auto", batch_size=8, stop_sequences=("\n",),
      max_new_tokens=16))
  # add_bos: "auto" encodes prompts as the tokenizer does (BOS only where its post-processor adds one);
  # "true" / "false" force a BOS token before every prompt or none.
  c.wandb = ml_collections.ConfigDict(dict(mode="disabled"))
  return c
