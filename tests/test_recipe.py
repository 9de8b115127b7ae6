from pathlib import Path

import pytest

from rlreason.recipe import Recipe, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_empty_recipe_gets_the_dataclass_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, ""))
    assert recipe == Recipe()
    assert recipe.rewards[0].name == "math_accuracy"


def test_misspelt_key_names_the_path_and_suggests_the_right_key(tmp_path):
    path = write(tmp_path, "trainer:\n  learnig_rate: 0.1\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert "trainer.learnig_rate" in message and "did you mean 'learning_rate'" in message
    assert "\n" not in message


@pytest.mark.parametrize("text, expected", [
    # wrong type
    ("trainer:\n  max_steps: many\n", "trainer.max_steps: expected int, got 'many'"),
    # booleans are not integers even though Python says so
    ("trainer:\n  max_steps: true\n", "trainer.max_steps: expected int"),
    # value out of range, with the rule
    ("trainer:\n  max_steps: 0\n", "trainer.max_steps: must be > 0"),
    # literal choices are listed
    ("algo:\n  loss_type: ppo\n", "algo.loss_type: must be one of grpo, bnpo, dapo, dr_grpo, gspo, gspo_token"),
    # errors inside lists name the index
    ("rewards:\n  - {name: math_accuracy, wieght: 2}\n", "rewards[0].wieght: unknown key; did you mean 'weight'"),
    # a section that is not a mapping
    ("model: gpt\n", "model: expected a mapping"),
    # a key that resembles nothing lists the valid ones
    ("zzz: 1\n", "zzz: unknown key; valid keys: name,"),
])
def test_bad_values_fail_with_the_key_path(tmp_path, text, expected):
    with pytest.raises(RecipeError, match="recipe.yaml: " + expected.replace("(", r"\(").replace("[", r"\[")):
        load_recipe(write(tmp_path, text))


def test_float_written_in_exponent_form_is_read_as_float(tmp_path):
    # PyYAML reads 1e-5 (no dot) as a string; the recipe still means a float
    recipe = load_recipe(write(tmp_path, "trainer:\n  learning_rate: 1e-5\n"))
    assert recipe.trainer.learning_rate == pytest.approx(1e-5)


def test_set_overrides_any_nested_key(tmp_path):
    path = write(tmp_path, "trainer:\n  max_steps: 10\n")
    recipe = load_recipe(path, ["trainer.max_steps=2", "model.tiny.num_experts=8",
                                "rollout.stop=[\"\\n\"]", "model.name_or_path=null"])
    assert recipe.trainer.max_steps == 2
    assert recipe.model.tiny.num_experts == 8
    assert recipe.rollout.stop == ["\n"]
    assert recipe.model.name_or_path is None


def test_override_is_validated_like_the_file(tmp_path):
    with pytest.raises(RecipeError, match="trainer.max_stepz: unknown key; did you mean 'max_steps'"):
        load_recipe(write(tmp_path, ""), ["trainer.max_stepz=3"])
    with pytest.raises(RecipeError, match="expected key.path=value"):
        load_recipe(write(tmp_path, ""), ["trainer.max_steps"])


def test_missing_recipe_file_is_named(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found: .*nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")


RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_is_valid_and_says_how_to_run_it(path):
    load_recipe(path)
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("#") and "rlreason " in path.read_text().split("\n\n")[0]
