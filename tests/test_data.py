import json

import pytest

from rlreason.data import PromptSampler, arithmetic_problems, load_splits, without_carry
from rlreason.recipe import DataConfig, RecipeError, SyntheticConfig, build


def test_synthetic_problems_are_deterministic_and_exact():
    cfg = SyntheticConfig(num_train=500, operations="+-*")
    train, held_out = arithmetic_problems(cfg, num_eval=50)
    assert (train, held_out) == arithmetic_problems(cfg, num_eval=50)
    for row in train + held_out:
        assert int(row["answer"]) == eval(row["question"].rstrip("="))


def test_zero_padded_operands_line_up_their_digits():
    train, held_out = arithmetic_problems(SyntheticConfig(num_train=500, operations="+-", zero_pad=True),
                                          num_eval=50)
    for row in train + held_out:
        a, op, b = row["question"][:2], row["question"][2], row["question"][3:-1]
        assert len(row["question"]) == 6 and a.isdigit() and b.isdigit()
        assert int(row["answer"]) == eval(f"{int(a)}{op}{int(b)}")
    assert any(row["question"].startswith("0") for row in train)


def test_held_out_problems_never_appear_in_training():
    train, held_out = arithmetic_problems(SyntheticConfig(num_train=5000), num_eval=200)
    assert len(held_out) == 200 and len({r["question"] for r in held_out}) == 200
    assert not {r["question"] for r in train} & {r["question"] for r in held_out}


def test_sloppy_teacher_errs_only_where_a_carry_is_needed():
    train, _ = arithmetic_problems(SyntheticConfig(num_train=2000, operations="+",
                                                   teacher_error_rate=1.0), num_eval=10)
    wrong = [r for r in train if r["demonstration"] != r["answer"]]
    assert 0.3 < len(wrong) / len(train) < 0.8
    for row in train:
        a, b = map(int, row["question"].rstrip("=").split("+"))
        needs_carry = any(int(x) + int(y) >= 10 for x, y in zip(str(a).zfill(2), str(b).zfill(2)))
        assert (row["demonstration"] != row["answer"]) == needs_carry


@pytest.mark.parametrize("a, op, b, expected", [
    (47, "+", 85, 22),   # 7+5 -> 2, 4+8 -> 2
    (12, "+", 34, 46),   # no carry: the right answer
    (52, "-", 17, 45),   # 2-7 -> |.| 5, 5-1 -> 4
    (17, "-", 52, -45),  # negative result mirrors
    (5, "+", 95, 90),    # operands of different widths
])
def test_without_carry(a, op, b, expected):
    assert without_carry(a, op, b) == expected


def test_local_jsonl_file_with_columns_and_template(shared_data):
    cfg = build(DataConfig, {"source": str(shared_data / "gsm8k_test.jsonl"), "num_eval": 19,
                             "prompt_template": "Question: {prompt}\nAnswer:"}, "data")
    splits = load_splits(cfg)
    assert len(splits.eval) == 19 and len(splits.train) == 1319 - 19
    example = splits.eval[0]
    assert example.prompt.startswith("Question: ") and example.prompt.endswith("\nAnswer:")
    assert "####" in example.columns["answer"]
    assert {e.prompt for e in splits.eval}.isdisjoint({e.prompt for e in splits.train})


def test_missing_dataset_file_names_the_path(tmp_path):
    cfg = build(DataConfig, {"source": str(tmp_path / "absent.jsonl")}, "data")
    with pytest.raises(RecipeError, match=r"data.source: dataset file not found: .*absent.jsonl"):
        load_splits(cfg)


def test_missing_column_names_the_key_row_and_columns(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({"problem": f"{i}+1", "answer": str(i + 1)}) for i in range(5)))
    cfg = build(DataConfig, {"source": str(path), "num_eval": 1}, "data")
    with pytest.raises(RecipeError, match="data.prompt_column: row 0 has no column 'question'; columns: problem, answer"):
        load_splits(cfg)


def test_rows_that_can_never_give_a_signal_are_left_out_counted_and_named(tmp_path, caplog):
    rows = [{"question": f"{i}+1", "answer": str(i + 1)} for i in range(6)]
    rows[1]["question"], rows[3]["answer"], rows[4]["answer"] = "  ", None, ""
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = build(DataConfig, {"source": str(path), "num_eval": 1, "shuffle_seed": 0}, "data")
    splits = load_splits(cfg)
    kept = {e.prompt for e in splits.train + splits.eval}
    assert kept == {"0+1", "2+1", "5+1"}
    assert "left out 3 of" in caplog.text and "an empty 'question'" in caplog.text and "no answer in 'answer'" in caplog.text
    path.write_text("\n".join(json.dumps({"question": "", "answer": "1"}) for _ in range(4)))
    with pytest.raises(RecipeError, match="none of its .* rows can give a signal"):
        load_splits(cfg)


def test_sampler_covers_every_example_each_epoch_in_a_seeded_order():
    examples = list(range(10))
    sampler = PromptSampler(examples, batch_size=5, seed=3)
    first_epoch = sampler.next_batch() + sampler.next_batch()
    assert sorted(first_epoch) == examples
    again = PromptSampler(examples, batch_size=5, seed=3)
    assert again.next_batch() + again.next_batch() == first_epoch
