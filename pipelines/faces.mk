# The faces pipeline: fetch + detect -> dedup of the face crops -> train -> sample -> report.html
#   make faces CRAWL=crawl.txt OUT=build/faces [STEPS=... DEVICE=... FETCH_WORKERS=...]
# CRAWL lists one URL or local path per line (or name<TAB>url; .tsv/.csv/.jsonl with a url
# column). FACES_ARGS passes options to `dcgan-data faces` (e.g. --detector haar).

FACES_OUT = $(or $(OUT),build/faces)
FETCH_WORKERS ?= 16

ifneq ($(filter faces,$(MAKECMDGOALS)),)
ifeq ($(wildcard $(CRAWL)),)
$(error make faces: set CRAWL to a crawl list file)
endif
endif

.PHONY: faces
faces: $(FACES_OUT)/report.html ## faces pipeline: make faces CRAWL=crawl.txt [OUT=build/faces]

$(FACES_OUT)/.args-faces: STAGE_ARGS = $(CRAWL) --size $(SIZE) $(FACES_ARGS)
$(FACES_OUT)/faces/manifest.json: $(CRAWL) $(FACES_OUT)/.args-faces | $(STAMP)
	$(call redo_if_done,$@)
	$(DCGAN) faces $(CRAWL) -o $(@D) --workers $(FETCH_WORKERS) --size $(SIZE) $(FACES_ARGS)

# (not when only the LSUN pipeline is asked for: it may use the same OUT)
ifeq ($(filter lsun,$(MAKECMDGOALS))$(filter-out lsun,$(MAKECMDGOALS)),lsun)
else
$(eval $(call train_stages,$(FACES_OUT),$(FACES_OUT)/faces,$(FACES_DEDUP_ARGS)))
endif
