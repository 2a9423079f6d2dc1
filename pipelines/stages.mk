# Stages shared by the pipelines: dedup -> train -> sample -> audit -> report.html.
# $(call train_stages,OUT,INPUT_STAGE_DIR,DEDUP_ARGS) defines, for one pipeline output folder,
#   OUT/dedup/manifest.json, OUT/train/train_report.json, OUT/samples.png,
#   OUT/audit/audit_report.json, OUT/report.html.
# AUDIT_ARGS passes options to `dcgan-data audit` (e.g. -n 2000).
# Every stage writes a file target last: a re-run skips finished stages; when a stage's input
# or its arguments changed its old output is removed and it runs afresh; a killed stage (no
# target yet) resumes.

# $(call redo_if_done,TARGET): the target exists but make wants it again, so its input changed
redo_if_done = @if [ -e $(1) ]; then echo "input changed: redoing $(dir $(1))"; rm -rf $(dir $(1)); fi

# OUT/.args-STAGE holds the arguments (STAGE_ARGS, set for each stamp) that the stage in
# OUT/STAGE/ ran with; a stage's target depends on its stamp. When the arguments change, the
# stage's folder goes (a run with other settings must not resume the old one) and the stamp is
# rewritten, so that stage and those after it run again. A new stamp is dated 1970: outputs
# finished before it existed are not redone. (--device and --workers change no output.)
.args-%: FORCE
	@mkdir -p $(@D); args='$(subst ','\'',$(STAGE_ARGS))'; \
	if [ ! -e $@ ]; then printf '%s\n' "$$args" > $@; touch -d @0 $@; \
	elif [ "$$(cat $@)" != "$$args" ]; then \
	  echo "arguments changed: redoing $*/"; rm -rf $*; printf '%s\n' "$$args" > $@; fi
FORCE:

define train_stages
$(1)/.args-dedup: STAGE_ARGS = --size $$(SIZE) $(3)
$(1)/dedup/manifest.json: $(2)/manifest.json $(1)/.args-dedup
	$$(call redo_if_done,$$@)
	$$(DCGAN) dedup $(2) -o $(1)/dedup --size $$(SIZE) --device $$(DEVICE) $(3)

$(1)/.args-train: STAGE_ARGS = --steps $$(STEPS) $$(TRAIN_ARGS)
$(1)/train/train_report.json: $(1)/dedup/manifest.json $(1)/.args-train
	$$(call redo_if_done,$$@)
	$$(DCGAN) train $(1)/dedup -o $(1)/train --resume --device $$(DEVICE) --steps $$(STEPS) $$(TRAIN_ARGS)

$(1)/samples.png: $(1)/train/train_report.json
	$$(DCGAN) sample $(1)/train -n 64 -o $$@ --device $$(DEVICE)

# did the generator memorise its training images? (samples vs the de-duplicated shards)
$(1)/.args-audit: STAGE_ARGS = $$(AUDIT_ARGS)
$(1)/audit/audit_report.json: $(1)/samples.png $(1)/.args-audit
	$$(call redo_if_done,$$@)
	$$(DCGAN) audit $(1)/train --train $(1)/dedup -o $(1)/audit --device $$(DEVICE) $$(AUDIT_ARGS)

$(1)/report.html: $(1)/samples.png $(1)/audit/audit_report.json
	$$(DCGAN) report $(1) -o $$@
endef
