"""Few-shot evaluation of a language model: the `icl_eval` job (lightft_jax.icl.run_icl_eval).

  python -m lightft_jax.main --config=configs/icl_eval.py:task=rotten_tomatoes,k=0+1+2+4+8 --workdir=runs/icl
Arguments: task, k ("+"-separated list), model (smollm2 | preset | checkpoint dir | .gguf), limit (queries),
seeds (how many), labels (gold | random | flipped), selection (random | balanced | knn), calibrate.
Queries come from `task.test_split`, demonstrations from `task.train_split`.
"""

from lightft_jax.train import config_lib


def parse_ks(value: str) -> tuple[int, ...]:
  """"8" -> (8,); "0+1+2" -> (0, 1, 2)."""
  return tuple(int(v) for v in value.split("+") if v.strip())


def get_config(arg=None):
  a = config_lib.parse_arg(arg, task="rotten_tomatoes", k="0+1+2+4+8", model="smollm2", limit=200, seeds=1,
                           labels="gold", selection="random", calibrate=True)
  c = config_lib.base_config()
  c.job = "icl_eval"
  c.model.name = a.model
  c.task.name = a.task
  c.task.train_split, c.task.test_split = "train", "test"
  rotten = a.task.split("/")[0] == "rotten_tomatoes"  # either source: rotten_tomatoes(/snippets), /polarity
  c.prompt = dict(
      input_template="Review: {text}\nSentiment:" if rotten else "",  # "": built from the task's text fields
      verbalizers=("negative", "positive") if rotten else (),  # (): the task's verbalizer / label names
      choice_scored=True,  # False: score generated answers with the task metric
      label_delimiter=" ", example_delimiter="\n\n", instruction="", answer_field="label")
  c.icl = dict(
      ks=parse_ks(a.k), seeds=tuple(range(a.seeds)), selection=a.selection, label_mode=a.labels,
      order="as_selected", per_query_demos=False, calibrate=a.calibrate,
      content_free_inputs=("N/A", "", "[MASK]"), add_bos="auto", batch_size=8, stop_sequences=("\n",),
      max_new_tokens=16, query_limit=a.limit, pool_limit=0)
  # add_bos: "auto" encodes prompts as the tokenizer does (BOS only where its post-processor adds one);
  # "true" / "false" force a BOS token before every prompt or none.
  c.wandb.mode = "disabled"
  return config_lib.finalize(c)
