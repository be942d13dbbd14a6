# ctprep.mk: a folder of patient DICOM folders to training-ready NPY files, in parallel and
# incrementally. Every tool writes atomically (a temporary, then a rename) and .DELETE_ON_ERROR
# covers the piped step, so a failed patient leaves no partial outputs; it is reported at the end
# and does not stop the others.
#
#   make -j4 -f scripts/ctprep.mk IN=patients OUT=out
#
# Exit status is make's: 0 when every patient went through, 2 when any failed (make reports a
# failed recipe as 2, whatever the recipe returned; the failed patients are listed last).
#
# IN/<patient>/...dcm  ->  OUT/<patient>/{hu_1mm.nii, lungs.nii.gz, bone.stl, bone.png, axial.png,
# coronal.png, fit.json, input.npy}, OUT/stats.json (the dataset mean, fitted over every patient's
# 1 mm volume, then applied to each) and OUT/report.html (ctprep-report: the QC page of the whole dataset).
# workflow/Snakefile does the same on a cluster.

IN ?= patients
OUT ?= out
BIN ?= target/release
SPACING ?= 1
DILATE ?= 5
SELF := $(lastword $(MAKEFILE_LIST))

PATIENTS := $(notdir $(patsubst %/,%,$(wildcard $(IN)/*/)))
HU := $(PATIENTS:%=$(OUT)/%/hu_1mm.nii)
LUNGS := $(PATIENTS:%=$(OUT)/%/lungs.nii.gz)
BONES := $(PATIENTS:%=$(OUT)/%/bone.stl)
THUMBS := $(PATIENTS:%=$(OUT)/%/axial.png)

.PHONY: all volumes inputs report
.DELETE_ON_ERROR:
.SECONDEXPANSION:

# Two passes: every patient's volumes (failures do not stop the others), then the dataset
# statistics over the volumes that exist and the training inputs; failed patients are listed.
all:
	-@$(MAKE) --no-print-directory -k -f $(SELF) volumes
	-@$(MAKE) --no-print-directory -k -f $(SELF) inputs
	@$(MAKE) --no-print-directory -f $(SELF) report
	@missing=""; for p in $(PATIENTS); do [ -f $(OUT)/$$p/hu_1mm.nii ] || missing="$$missing $$p"; done; \
	 if [ -n "$$missing" ]; then echo "ctprep.mk: failed patients:$$missing (see the errors above)"; exit 1; fi

volumes: $(HU) $(LUNGS) $(BONES) $(THUMBS)

# A patient is rebuilt when any file in its DICOM folder changes. -L: a patient folder may be a
# symbolic link (to the archive, say), and find must look inside it.
$(OUT)/%/hu_1mm.nii: $$(shell find -L $(IN)/$$* -type f)
	@mkdir -p $(@D)
	$(BIN)/hu-convert $(IN)/$* -q | $(BIN)/vol-resample --spacing $(SPACING) -q -o $@
	$(BIN)/vol-normalize --fit $@ -o $(@D)/fit.json -q

$(OUT)/%/lungs.nii.gz: $(OUT)/%/hu_1mm.nii
	$(BIN)/lung-seg $< --dilate $(DILATE) -o $@ --json -q > $(@D)/lungs_qc.json

$(OUT)/%/bone.stl: $(OUT)/%/hu_1mm.nii
	$(BIN)/vol-mesh $< --level 400 -o $@ --preview $(@D)/bone.png -q

$(OUT)/%/axial.png: $(OUT)/%/hu_1mm.nii $(OUT)/%/lungs.nii.gz
	$(BIN)/vol-view $< --coronal --overlay $(word 2,$^) --size 256 -o $(@D)/coronal.png -q
	$(BIN)/vol-view $< --overlay $(word 2,$^) --size 256 -o $@ -q

# The second pass sees the volumes that exist now.
DONE := $(wildcard $(OUT)/*/hu_1mm.nii)
inputs: $(patsubst %/hu_1mm.nii,%/input.npy,$(filter $(HU),$(DONE)))

# Merges each patient's own fit (made with its volume): no volume is read again.
$(OUT)/stats.json: $(filter $(HU),$(DONE))
	$(BIN)/vol-normalize --fit $(^:hu_1mm.nii=fit.json) -o $@

$(OUT)/%/input.npy: $(OUT)/%/hu_1mm.nii $(OUT)/%/lungs.nii.gz $(OUT)/stats.json
	$(BIN)/vol-normalize $< --stats $(OUT)/stats.json --mask $(OUT)/$*/lungs.nii.gz --outside 0 -o $@ -q

# The QC page over whatever exists now; --patients lists the patients that made nothing.
report:
	$(BIN)/ctprep-report $(OUT) --patients $(IN) -o $(OUT)/report.html -q
