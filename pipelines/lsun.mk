# The LSUN pipeline: ingest -> dedup -> train -> sample -> report.html
#   make lsun LSUN=path/to/lsun OUT=build/lsun [STEPS=... DEVICE=... WORKERS=... SIZE=64]
# LSUN is one *_lmdb directory or a folder holding several.

LSUN_OUT = $(or $(OUT),build/lsun)
LSUN_DB_FILES = $(wildcard $(LSUN)/data.mdb $(LSUN)/*/data.mdb)

.PHONY: lsun
lsun: $(LSUN_OUT)/report.html ## LSUN pipeline: make lsun LSUN=path/to/lsun [OUT=build/lsun]

$(LSUN_OUT)/ingested/manifest.json: $(LSUN_DB_FILES) | $(STAMP)
	@test -n "$(LSUN_DB_FILES)" || { echo "make lsun: set LSUN to an LSUN LMDB directory or a folder of them" >&2; exit 2; }
	$(call redo_if_done,$@)
	$(DCGAN) ingest $(LSUN) -o $(@D) --size $(SIZE) --workers $(WORKERS)

# (not when only the faces pipeline is asked for: it may use the same OUT)
ifeq ($(filter faces,$(MAKECMDGOALS))$(filter-out faces,$(MAKECMDGOALS)),faces)
else
$(eval $(call train_stages,$(LSUN_OUT),$(LSUN_OUT)/ingested,$(DEDUP_ARGS)))
endif
