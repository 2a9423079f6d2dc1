# The LSUN pipeline: ingest -> dedup -> train -> sample -> report.html
#   make lsun LSUN=path/to/lsun OUT=build/lsun [STEPS=... DEVICE=... WORKERS=... SIZE=64]
# LSUN is one *_lmdb directory, a folder holding several, or a folder of images (as
# `dcgan-data ingest` takes).

LSUN_OUT = $(or $(OUT),build/lsun)
# what the ingest depends on: the LMDB files, else the folder itself (its listing)
LSUN_INPUT = $(or $(wildcard $(LSUN)/data.mdb $(LSUN)/*/data.mdb),$(wildcard $(LSUN)))

.PHONY: lsun
lsun: $(LSUN_OUT)/report.html ## LSUN pipeline: make lsun LSUN=lmdb-or-image-folder [OUT=build/lsun]

ifneq ($(filter lsun,$(MAKECMDGOALS)),)
ifeq ($(LSUN_INPUT),)
$(error make lsun: set LSUN to an LSUN LMDB directory, a folder of them or a folder of images)
endif
endif

$(LSUN_OUT)/.args-ingested: STAGE_ARGS = $(LSUN) --size $(SIZE)
$(LSUN_OUT)/ingested/manifest.json: $(LSUN_INPUT) $(LSUN_OUT)/.args-ingested | $(STAMP)
	$(call redo_if_done,$@)
	$(DCGAN) ingest $(LSUN) -o $(@D) --size $(SIZE) --workers $(WORKERS)

# (not when only the faces pipeline is asked for: it may use the same OUT)
ifeq ($(filter faces,$(MAKECMDGOALS))$(filter-out faces,$(MAKECMDGOALS)),faces)
else
$(eval $(call train_stages,$(LSUN_OUT),$(LSUN_OUT)/ingested,$(DEDUP_ARGS)))
endif
