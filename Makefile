# ctprep: the two commands a newcomer needs are `make demo` and `make test`.
CARGO ?= cargo
BIN := target/release
OUT := demo/out
TOOLS := dcm-inspect dcm-stack hu-convert vol-resample lung-seg vol-normalize vol-mesh vol-view ct-phantom

.PHONY: all deps build test lint demo bench docs fuzz clean wheel pytest

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
	@rm -rf $(OUT) && mkdir -p $(OUT)
	@echo "== 0. a synthetic chest CT (random file names, no SliceThickness, padding -2000, a localizer, junk)"
	$(BIN)/ct-phantom $(OUT)/dicom --size 192 --slices 80 --slice-spacing 3 --localizer --junk --truth $(OUT)/lung_truth.nii.gz
	@echo "== 1. inspect tags"
	$(BIN)/dcm-inspect $$(ls $(OUT)/dicom/*.dcm | head -1) --tag PatientID --tag ImagePositionPatient --tag PixelPaddingValue
	$(BIN)/dcm-inspect $$(ls $(OUT)/dicom/*.dcm | head -1) --keywords Patient
	$(BIN)/dcm-inspect --series $(OUT)/dicom | tee $(OUT)/series.txt
	@echo "== 2-3. stack the series, convert to HU"
	$(BIN)/dcm-stack $(OUT)/dicom -o $(OUT)/ct.nii.gz -v
	$(BIN)/hu-convert $(OUT)/ct.nii.gz -o $(OUT)/hu.nii.gz --write-fov-mask $(OUT)/fov.nii.gz -v
	@echo "== 4. resample to 1 x 1 x 1 mm"
	$(BIN)/vol-resample $(OUT)/hu.nii.gz --spacing 1 -o $(OUT)/hu_1mm.nii.gz -v
	@echo "== 6. segment the lungs (robust default, and the tutorial's method)"
	$(BIN)/lung-seg $(OUT)/hu_1mm.nii.gz --labels -o $(OUT)/lungs.nii.gz --json -v > $(OUT)/lungs_qc.json
	$(BIN)/lung-seg $(OUT)/hu_1mm.nii.gz --method tutorial --fill -o $(OUT)/lungs_tutorial.nii.gz -v
	$(BIN)/lung-seg $(OUT)/hu_1mm.nii.gz --dilate 5 -o $(OUT)/lungs_dilated.nii.gz -q
	@echo "== 7-8. normalize and zero-center (training-ready NPY, geometry in the .json sidecar)"
	$(BIN)/vol-normalize $(OUT)/hu_1mm.nii.gz -o $(OUT)/input.npy -v
	$(BIN)/vol-normalize $(OUT)/hu_1mm.nii.gz --mask $(OUT)/lungs_dilated.nii.gz --outside 0 -o $(OUT)/input_lungs.npy -q
	@echo "== 5. render: bone and lung meshes (open them in MeshLab, Blender or 3D Slicer) with previews"
	$(BIN)/vol-mesh $(OUT)/hu_1mm.nii.gz --level 400 -o $(OUT)/bone.stl --preview $(OUT)/bone.png -v
	$(BIN)/vol-mesh $(OUT)/lungs.nii.gz --sigma 1 --smooth 5 -o $(OUT)/lungs.obj --preview $(OUT)/lungs.png -v
	@echo "== pictures: a DICOM slice, the HU histogram, the lung mask on an axial slice, a coronal montage"
	$(BIN)/vol-view $$(ls $(OUT)/dicom/*.dcm | head -1) -o $(OUT)/dicom_slice.png
	$(BIN)/vol-view $(OUT)/hu.nii.gz --histogram $(OUT)/histogram.png
	$(BIN)/vol-view $(OUT)/hu_1mm.nii.gz --overlay $(OUT)/lungs.nii.gz -o $(OUT)/axial_lungs.png
	$(BIN)/vol-view $(OUT)/hu_1mm.nii.gz --coronal --montage 2x3 --overlay $(OUT)/lungs.nii.gz --contour -o $(OUT)/coronal_montage.png
	@echo "== done: demo/out/"
	@ls -l $(OUT)

bench: build wheel
	bash scripts/bench.sh

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
	rm -rf demo/out
