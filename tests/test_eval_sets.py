"""`rlreason eval --dataset` on the shared GSM8K / MATH-500 / HumanEval files."""

import json

import pytest

from rlreason.eval_sets import EVAL_SETS, MATH_TEMPLATE, recognised, with_eval_set
from rlreason.recipe import Recipe, RecipeError, build
from rlreason.tiny import build_tokenizer
from tests.helpers import TINY_SET, rlreason

FILES = {"gsm8k": "gsm8k_test.jsonl", "math500": "math500_test.jsonl", "humaneval": "humaneval.jsonl"}
TINY_EVAL = [*TINY_SET, "--set", "model.name_or_path=null", "--set", "model.tiny.max_position_embeddings=4096",
             "--set", "rollout.backend=hf", "--set", "rollout.max_new_tokens=12"]


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_shared_file_is_recognised_by_its_columns(shared_data, name):
    assert recognised(shared_data / FILES[name]) == name


def test_a_file_of_other_columns_is_refused_with_the_sets_it_could_be(tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"text": "hi", "label": 1}) + "\n")
    with pytest.raises(RecipeError, match="columns label, text are none of gsm8k"):
        recognised(other)
    with pytest.raises(RecipeError, match="no such file"):
        recognised(tmp_path / "missing.jsonl")


def test_a_named_set_points_the_recipe_at_the_hub_with_its_template():
    recipe = build(Recipe, {"name": "x", "data": {"prompt_template": "Q: {prompt} A: <think>"}}, "")
    gsm8k, name = with_eval_set(recipe, "gsm8k", limit=50)
    assert name == "gsm8k"
    assert (gsm8k.data.eval_source, gsm8k.data.eval_subset, gsm8k.data.eval_split) == ("openai/gsm8k", "main", "test")
    assert (gsm8k.data.prompt_column, gsm8k.data.num_eval, gsm8k.data.prompt_template) == ("question", 50, MATH_TEMPLATE)
    kept, _ = with_eval_set(recipe, "math500", split="test", keep_template=True)
    assert kept.data.prompt_template == "Q: {prompt} A: <think>" and kept.data.prompt_column == "problem"
    assert EVAL_SETS["humaneval"].prompt_template == "{prompt}"
    assert gsm8k.data.chat_template == "auto"  # a recipe for a base model: plain prompts stay plain
    chat = build(Recipe, {"name": "x", "data": {"system_prompt": "Be brief."}}, "")
    assert with_eval_set(chat, "gsm8k")[0].data.chat_template is True  # a system prompt: a chat model


@pytest.mark.parametrize("name, reward", [("gsm8k", "math_accuracy"), ("math500", "math_accuracy"),
                                          ("humaneval", "code_accuracy")])
def test_eval_on_a_shared_file_scores_every_problem(shared_data, tmp_path, name, reward):
    out = tmp_path / "eval"
    done = rlreason("eval", "recipes/demo/grpo.yaml", *TINY_EVAL, "--set", f"rewards=[{{name: {reward}}}]",
                    "--dataset", str(shared_data / FILES[name]), "--limit", "3", "--output-dir", str(out),
                    "--set", f"output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    written = json.loads((out / "eval.json").read_text())
    assert (written["dataset"], written["problems"]) == (name, 3)
    samples = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (shared_data / FILES[name]).read_text().splitlines()[:3]]
    column = EVAL_SETS[name].prompt_column
    for sample, row in zip(samples, rows):
        assert sample["prompt"] == EVAL_SETS[name].prompt_template.format(prompt=row[column])
        assert sample["score"] is not None  # the reference (or the tests) reached the reward
    assert written["metrics"]["accuracy"] == written["metrics"][f"reward/{reward}"]


@pytest.mark.slow  # trains, then evaluates, in subprocesses
def test_a_run_directory_or_checkpoint_is_evaluated_with_the_runs_recipe(tmp_path):
    run_dir = tmp_path / "runs"
    assert rlreason("sft", "recipes/demo/sft.yaml", "--set", "trainer.max_steps=1", *TINY_SET,
                    "--set", "data.num_eval=5", "--set", f"output_dir={run_dir}").returncode == 0
    by_checkpoint = rlreason("eval", str(run_dir / "final"))
    by_run = rlreason("eval", str(run_dir))
    assert by_checkpoint.returncode == 0, by_checkpoint.stderr
    assert json.loads(by_checkpoint.stdout) == json.loads(by_run.stdout)
    (tmp_path / "empty").mkdir()
    refused = rlreason("eval", str(tmp_path / "empty"))
    assert refused.returncode != 0 and "no config.yaml" in refused.stderr


def test_eval_of_a_chat_model_renders_the_sets_problems_with_its_chat_template(shared_data, tmp_path):
    out = tmp_path / "eval"
    done = rlreason("eval", "recipes/demo/grpo.yaml", *TINY_EVAL, "--set", "model.tiny.tokenizer=chatml",
                    "--set", "data.chat_template=true", "--set", "data.chat_template_kwargs={enable_thinking: false}",
                    "--dataset", str(shared_data / FILES["gsm8k"]), "--limit", "2", "--output-dir", str(out),
                    "--set", f"output_dir={tmp_path}")
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (shared_data / FILES["gsm8k"]).read_text().splitlines()[:2]]
    tokenizer = build_tokenizer("chatml")
    for sample, row in zip(samples, rows):  # the set's own prompt, as one user turn of the template
        turn = [{"role": "user", "content": MATH_TEMPLATE.format(prompt=row["question"])}]
        assert sample["prompt"] == tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True,
                                                                 enable_thinking=False)
