"""The R1 format, length-shaping and style rewards, by name, as a recipe uses them."""

import pytest

from rewards import RewardError, RewardSuite, resolve
from rlreason.recipe import RewardSpec

R1 = "<think>\n7 plus 5 is 12\n</think>\n<answer>\n12\n</answer>"


def scored(name, completions, **columns):
    return resolve(name)(completions, **columns)


@pytest.mark.parametrize("completion, expected", [
    (R1, 1.0),
    ("  <think>x</think><answer>12</answer>\n", 1.0),
    ("<answer>12</answer><think>x</think>", 0.0),  # wrong order
    ("<think>x</think><answer>12</answer> so 12", 0.0),  # text after the answer
    ("<think>x</think>\n12", 0.0),  # no answer tags
    ("<think>x</think><think>y</think><answer>12</answer>", 0.0),  # a tag twice
    ("12", 0.0),
])
def test_format_rewards_exactly_the_r1_template(completion, expected):
    assert scored("format", [completion]) == [expected]


def test_format_and_tag_count_when_the_prompt_opened_the_think_tag():
    body = "7 plus 5 is 12</think><answer>12</answer>"
    assert scored("format", [body]) == [0.0]
    assert scored("format", [body], think_opened=True) == [1.0]
    assert scored("tag_count", [body]) == [0.75]
    assert scored("tag_count", [body], think_opened=True) == [1.0]


def test_tag_count_gives_partial_credit_on_the_way_to_the_format():
    steps = ["12", "<think>x 12", "<think>x</think> 12", "<think>x</think><answer>12", R1]
    assert scored("tag_count", steps) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_kimi_length_reward_ranks_within_each_prompts_group():
    completions = ["12", "12 is it", "13", "13 or so",  # prompt A: correct short/long, wrong short/long
                   "4", "4"]  # prompt B: equal lengths -> 0
    ids = [[0] * 2, [0] * 8, [0] * 2, [0] * 8, [0] * 3, [0] * 3]
    prompts = ["5+7="] * 4 + ["2+2="] * 2
    answer = ["12"] * 4 + ["4"] * 2
    got = scored("length", completions, answer=answer, prompts=prompts, completion_ids=ids)
    # lambda = 0.5 at the shortest, -0.5 at the longest of group A
    assert got == [0.5, -0.5, 0.0, -0.5, 0.0, 0.0]


def test_cosine_length_scaling_prefers_short_correct_and_long_wrong():
    lengths = [0, 25, 50, 75, 100, 150]
    ids = [[0] * n for n in lengths]
    right = scored("cosine", ["12"] * 6, answer=["12"] * 6, completion_ids=ids, max_length=100)
    wrong = scored("cosine", ["13"] * 6, answer=["12"] * 6, completion_ids=ids, max_length=100)
    assert right[0] == 1.0 and right[4] == right[5] == 0.5  # past max_length counts as max_length
    assert wrong[0] == -1.0 and wrong[4] == wrong[5] == -0.5
    assert right == sorted(right, reverse=True) and wrong == sorted(wrong)
    assert right[2] == pytest.approx(0.75) and wrong[2] == pytest.approx(-0.75)
    with pytest.raises(RewardError, match="max_length"):
        scored("cosine", ["12"], answer=["12"])
    with pytest.raises(RewardError, match="column answer"):
        scored("cosine", ["12"], max_length=10)


def test_repetition_penalty_grows_with_repeated_ngrams():
    fresh = "first add the ones then carry the ten and add the tens"
    looping = "add the ones " * 6
    got = scored("repetition_penalty", [fresh, looping, ""], max_penalty=-0.5)
    assert got[0] == 0.0 and got[2] == 0.0
    assert -0.5 < got[1] < -0.3  # 16 trigrams, 3 distinct: -0.5 * 13/16
    with pytest.raises(RewardError, match="max_penalty"):
        scored("repetition_penalty", ["a"], max_penalty=1.0)


def test_language_consistency_is_the_share_of_target_script_words_in_the_reasoning():
    mixed = "<think>first add 然后 carry</think><answer>12</answer>"  # 3 Latin words, 2 ideographs
    got = scored("language_consistency", [mixed, "<think>Сначала add</think>", "<think>7+5</think>"])
    assert got == [0.6, 0.5, None]
    assert scored("language_consistency", [mixed], script="cjk") == [0.4]
    assert scored("language_consistency", ["plain text, no tags <answer>日本</answer>"]) == [1.0]


def test_soft_overlong_punishment_is_dapos_overlong_penalty():
    assert resolve("soft_overlong_punishment") is resolve("overlong_penalty")


def test_weighted_r1_rewards_in_one_suite_are_logged_per_function():
    specs = [RewardSpec("math_accuracy", 1.0), RewardSpec("format", 0.5), RewardSpec("tag_count", 0.25)]
    batch = RewardSuite(specs).score([R1, "12"], {"answer": ["12", "12"]})
    assert batch.per_function == {"math_accuracy": [1.0, 1.0], "format": [1.0, 0.0], "tag_count": [1.0, 0.0]}
    assert batch.total == [1.75, 1.0]


@pytest.mark.parametrize("completion, gold, expected", [
    ("140", "140", 1.0),
    ("141", "140", 2 / 3),        # the units digit is wrong
    ("40", "140", 2 / 3),         # the carry into the hundreds is missing
    ("so it is 131", "140", 1 / 3),
    ("-140", "140", 0.0),         # a wrong sign is wrong everywhere
    ("1,400", "140", 0.25),
    ("no number", "140", 0.0),
    ("140", "3/4", None),         # only integer golds get partial credit
    ("092", "92", 1.0),           # leading zeros (a fixed-width answer) are no digits
    ("040", "140", 2 / 3),
    ("000", "0", 1.0),
])
def test_digit_match_is_the_share_of_digits_in_place(completion, gold, expected):
    score = resolve("digit_match")([completion], answer=[gold])[0]
    assert score == (None if expected is None else pytest.approx(expected))


def test_digit_match_ranks_near_misses_between_exact_and_wrong():
    scores = resolve("digit_match")(["132", "122", "22", "7"], answer=["132"] * 4)
    assert scores[0] == 1.0 > scores[1] > scores[2] > scores[3] == 0.0
