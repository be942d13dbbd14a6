# ctprep: the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
BIN := target/release
DEMO := demo/out
TOOLS := dcm-inspect dcm-stack hu-convert vol-resample lung-seg vol-normalize vol-mesh vol-view ct-phantom ctprep-report

.PHONY: all deps deps-browser build test lint demo bench bench-dataset bench-scaling docs fuzz clean wheel pytest dataset workflow-test

all: build

# What the build needs beyond Rust: cmake for the JPEG-LS codec (charls).
deps:
	@command -v cmake >/dev/null 2>&1 || { \
	  echo "make: installing cmake (the JPEG-LS codec needs it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq cmake >/dev/null; }

build: deps
	$(CARGO) build --release --locked

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked --quiet

test: lint
	$(CARGO) test --workspace --locked
	$(MAKE) --no-print-directory pytest
	$(MAKE) --no-print-directory workflow-test

# Headless Chromium for the report's browser test (Debian's package). Without apt the test says
# it was skipped.
deps-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make: installing chromium (the QC report's browser test needs it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null \
	    || echo "make: could not install chromium: the browser test will be SKIPPED"; }

# The dataset workflow: Snakemake and its cluster plugins from PyPI, in their own venv, made once.
SNAKE := target/py/snake
$(SNAKE)/.ready: workflow/requirements.txt
	rm -rf $(SNAKE) && $(PYTHON) -m venv $(SNAKE)
	$(SNAKE)/bin/pip install -q --disable-pip-version-check -r workflow/requirements.txt
	touch $@

# The workflow with a real Snakemake on phantom patients, and its report in headless Chromium,
# on the binaries `cargo test` built (`--no-run` builds them with the tests' features: `cargo
# build` would recompile the workspace without them, minutes on a fresh machine).
workflow-test: deps-browser $(SNAKE)/.ready
	$(CARGO) test --workspace --no-run --locked --quiet
	CTPREP_BIN=target/debug $(SNAKE)/bin/python -m pytest -q -p no:cacheprovider workflow/tests

# A whole dataset: IN holds one folder of DICOM files per patient; everything lands in OUT,
# with the QC report in OUT/report.html (docs/scale.md; a cluster: the profiles there).
IN ?= patients
OUT ?= dataset-out
CORES ?= $(shell nproc)
dataset: build $(SNAKE)/.ready
	$(SNAKE)/bin/snakemake -s workflow/Snakefile --cores $(CORES) --config input=$(IN) output=$(OUT) bin=$(BIN)

# The Python package: a venv with maturin (and the test tools) from PyPI, made once.
PYTHON ?= python3
PYDEV := target/py/dev
$(PYDEV)/.ready: python/requirements-test.txt
	rm -rf $(PYDEV) && $(PYTHON) -m venv $(PYDEV)
	$(PYDEV)/bin/pip install -q --disable-pip-version-check -r python/requirements-test.txt
	touch $@

# A release wheel in target/wheels/ (`pip install target/wheels/ctprep-*.whl`; or `pip install .`).
wheel: deps $(PYDEV)/.ready
	rm -rf target/wheels
	$(PYDEV)/bin/maturin build --release --locked -o target/wheels

# pytest on a wheel installed into a fresh venv, as a user gets it. The wheel is built with the
# dev profile, which shares its compiled dependencies with `cargo test`.
pytest: deps $(PYDEV)/.ready
	rm -rf target/py/wheel target/py/fresh
	$(PYDEV)/bin/maturin build --profile dev --locked -o target/py/wheel --quiet
	$(PYTHON) -m venv target/py/fresh
	target/py/fresh/bin/pip install -q --disable-pip-version-check target/py/wheel/ctprep-*.whl -r python/requirements-test.txt
	cd python/tests && ../../target/py/fresh/bin/python -m pytest -q -p no:cacheprovider

# The tutorial, step by step, on the built-in phantom; everything lands in demo/out/.
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	@echo "== 0. a synthetic chest CT (random file names, no SliceThickness, padding -2000, a localizer, junk)"
	$(BIN)/ct-phantom $(DEMO)/dicom --size 192 --slices 80 --slice-spacing 3 --localizer --junk --truth $(DEMO)/lung_truth.nii.gz
	@echo "== 1. inspect tags"
	$(BIN)/dcm-inspect $$(ls $(DEMO)/dicom/*.dcm | head -1) --tag PatientID --tag ImagePositionPatient --tag PixelPaddingValue
	$(BIN)/dcm-inspect $$(ls $(DEMO)/dicom/*.dcm | head -1) --keywords Patient
	$(BIN)/dcm-inspect --series $(DEMO)/dicom | tee $(DEMO)/series.txt
	@echo "== 2-3. stack the series, convert to HU"
	$(BIN)/dcm-stack $(DEMO)/dicom -o $(DEMO)/ct.nii.gz -v
	$(BIN)/hu-convert $(DEMO)/ct.nii.gz -o $(DEMO)/hu.nii.gz --write-fov-mask $(DEMO)/fov.nii.gz -v
	@echo "== 4. resample to 1 x 1 x 1 mm"
	$(BIN)/vol-resample $(DEMO)/hu.nii.gz --spacing 1 -o $(DEMO)/hu_1mm.nii.gz -v
	@echo "== 6. segment the lungs (robust default, and the tutorial's method)"
	$(BIN)/lung-seg $(DEMO)/hu_1mm.nii.gz --labels -o $(DEMO)/lungs.nii.gz --json -v > $(DEMO)/lungs_qc.json
	$(BIN)/lung-seg $(DEMO)/hu_1mm.nii.gz --method tutorial --fill -o $(DEMO)/lungs_tutorial.nii.gz -v
	$(BIN)/lung-seg $(DEMO)/hu_1mm.nii.gz --dilate 5 -o $(DEMO)/lungs_dilated.nii.gz -q
	@echo "== 7-8. normalize and zero-center (training-ready NPY, geometry in the .json sidecar)"
	$(BIN)/vol-normalize $(DEMO)/hu_1mm.nii.gz -o $(DEMO)/input.npy -v
	$(BIN)/vol-normalize $(DEMO)/hu_1mm.nii.gz --mask $(DEMO)/lungs_dilated.nii.gz --outside 0 -o $(DEMO)/input_lungs.npy -q
	@echo "== 5. render: bone and lung meshes (open them in MeshLab, Blender or 3D Slicer) with previews"
	$(BIN)/vol-mesh $(DEMO)/hu_1mm.nii.gz --level 400 -o $(DEMO)/bone.stl --preview $(DEMO)/bone.png -v
	$(BIN)/vol-mesh $(DEMO)/lungs.nii.gz --sigma 1 --smooth 5 -o $(DEMO)/lungs.obj --preview $(DEMO)/lungs.png -v
	@echo "== pictures: a DICOM slice, the HU histogram, the lung mask on an axial slice, a coronal montage"
	$(BIN)/vol-view $$(ls $(DEMO)/dicom/*.dcm | head -1) -o $(DEMO)/dicom_slice.png
	$(BIN)/vol-view $(DEMO)/hu.nii.gz --histogram $(DEMO)/histogram.png
	$(BIN)/vol-view $(DEMO)/hu_1mm.nii.gz --overlay $(DEMO)/lungs.nii.gz -o $(DEMO)/axial_lungs.png
	$(BIN)/vol-view $(DEMO)/hu_1mm.nii.gz --coronal --montage 2x3 --overlay $(DEMO)/lungs.nii.gz --contour -o $(DEMO)/coronal_montage.png
	@echo "== done: demo/out/"
	@ls -l $(DEMO)

bench: build wheel
	$(CARGO) build --release --locked --quiet --example io_floor -p ctprep-core
	bash scripts/bench.sh

# Each stage's cost against the scan's size: 100 to 1,000 slices and a thin-slice case
# (docs/benchmarks.md, issue #23); writes bench/out/scaling.md.
bench-scaling: build
	bash scripts/bench_scaling.sh

# Many patients: the workflow against ctprep.mk and the tutorial's loop (docs/benchmarks.md).
BATCH ?= 20
bench-dataset: build $(SNAKE)/.ready
	bash scripts/bench_dataset.sh $(BATCH)

# Coverage-guided fuzzing of every parser (cargo-fuzz; installs it when missing). FUZZ_SECONDS
# per target, two targets at a time; crashes land in fuzz/artifacts/, reproducers belong in
# fuzz/regressions/ (replayed by `make test`).
FUZZ_SECONDS ?= 60
fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Man pages and shell completions, generated from the same clap definitions as --help.
docs: build
	@mkdir -p target/dist/man target/dist/completions
	@for t in $(TOOLS); do \
	  $(BIN)/$$t --generate man > target/dist/man/$$t.1; \
	  $(BIN)/$$t --generate bash > target/dist/completions/$$t.bash; \
	  $(BIN)/$$t --generate zsh > target/dist/completions/_$$t; \
	  $(BIN)/$$t --generate fish > target/dist/completions/$$t.fish; \
	done
	@echo "man pages and completions in target/dist/"

clean:
	$(CARGO) clean
	rm -rf $(DEMO)
