# ctprep.mk: a folder of patient DICOM folders to training-ready NPY files, in parallel and
# incrementally. Every rule writes atomically (the tools write a temporary and rename), so a
# failed patient leaves no partial outputs, and `make -k` goes on with the others.
#
#   make -j4 -k -f scripts/ctprep.mk IN=patients OUT=out
#
# IN/<patient>/...dcm  ->  OUT/<patient>/{hu_1mm.nii.gz, lungs.nii.gz, bone.stl, input.npy}
# and OUT/stats.json (the dataset mean, fitted over every patient's 1 mm volume).

IN ?= patients
OUT ?= out
BIN ?= target/release
SPACING ?= 1
DILATE ?= 5

PATIENTS := $(notdir $(patsubst %/,%,$(wildcard $(IN)/*/)))
HU := $(PATIENTS:%=$(OUT)/%/hu_1mm.nii.gz)
LUNGS := $(PATIENTS:%=$(OUT)/%/lungs.nii.gz)
BONES := $(PATIENTS:%=$(OUT)/%/bone.stl)
INPUTS := $(PATIENTS:%=$(OUT)/%/input.npy)

.PHONY: all masks meshes
.DELETE_ON_ERROR:
.SECONDEXPANSION:

all: $(INPUTS) $(BONES)
masks: $(LUNGS)
meshes: $(BONES)

# A patient is rebuilt when any file in its DICOM folder changes.
$(OUT)/%/hu_1mm.nii.gz: $$(shell find $(IN)/$$* -type f)
	@mkdir -p $(@D)
	$(BIN)/dcm-stack $(IN)/$* -q | $(BIN)/hu-convert -q | $(BIN)/vol-resample --spacing $(SPACING) -q -o $@

$(OUT)/%/lungs.nii.gz: $(OUT)/%/hu_1mm.nii.gz
	$(BIN)/lung-seg $< --dilate $(DILATE) -o $@ --json -q > $(@D)/lungs_qc.json

$(OUT)/%/bone.stl: $(OUT)/%/hu_1mm.nii.gz
	$(BIN)/vol-mesh $< --level 400 -o $@ --preview $(@D)/bone.png -q

# The mean over every voxel of every patient: what the tutorial says to subtract.
$(OUT)/stats.json: $(HU)
	$(BIN)/vol-normalize --fit $(HU) -o $@

$(OUT)/%/input.npy: $(OUT)/%/hu_1mm.nii.gz $(OUT)/%/lungs.nii.gz $(OUT)/stats.json
	$(BIN)/vol-normalize $< --stats $(OUT)/stats.json --mask $(OUT)/$*/lungs.nii.gz --outside 0 -o $@ -q
