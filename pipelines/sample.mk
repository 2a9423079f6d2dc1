# The pipelines on the bundled sample: `make demo` (LSUN) and `make pipelines` (both, checked).

SAMPLE = build/sample
SAMPLE_PORT ?= 8754
# The demo's training: 32 px (the paper's ImageNet setting) and narrow nets, so that a few
# CPU minutes are enough steps for G to learn the sample's colours and layouts; the quality
# figure every 100 steps shows it learning.
SAMPLE_SIZE ?= 32
SAMPLE_STEPS ?= 1500
SAMPLE_TRAIN_ARGS ?= --ngf 32 --ndf 32 --batch-size 64 --sample-every 100 --eval-every 100 \
  --ckpt-every 500
# The faces pipeline checks the plumbing (~60 faces after dedup, less than one batch of 64),
# at 64 px and 300 steps.
SAMPLE_FACES_STEPS ?= 300
SAMPLE_FACES_TRAIN_ARGS ?= --ngf 32 --ndf 32 --batch-size 32 --sample-every 100 --ckpt-every 100
# the audit of a short run: 2,000 samples say as much as 10,000 and take a fifth of the time
SAMPLE_AUDIT_ARGS ?= -n 2000

$(SAMPLE)/sample_lmdb/data.mdb: pipelines/sample/make_sample.py | $(STAMP)
	rm -rf $(SAMPLE)/sample_lmdb
	$(BIN)/python pipelines/sample/make_sample.py $(SAMPLE)

$(SAMPLE)/crawl/crawl.txt: pipelines/sample/make_crawl.py | $(STAMP)
	$(BIN)/python pipelines/sample/make_crawl.py $(SAMPLE)/crawl --base-url http://127.0.0.1:$(SAMPLE_PORT)

.PHONY: sample-lsun sample-faces pipelines
sample-lsun: $(SAMPLE)/sample_lmdb/data.mdb
	$(MAKE) --no-print-directory lsun LSUN=$(SAMPLE)/sample_lmdb OUT=$(SAMPLE)/lsun SIZE=$(SAMPLE_SIZE) \
	  STEPS=$(SAMPLE_STEPS) TRAIN_ARGS="$(SAMPLE_TRAIN_ARGS)" \
	  AUDIT_ARGS="$(SAMPLE_AUDIT_ARGS)"

# The crawl's web server runs only while the faces pipeline does.
sample-faces: $(SAMPLE)/crawl/crawl.txt sample-lsun
	@$(BIN)/python pipelines/sample/serve.py $(SAMPLE)/crawl/www $(SAMPLE_PORT) & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT; \
	$(BIN)/python -c "import socket,time; [time.sleep(0.1) for _ in range(50) if socket.socket().connect_ex(('127.0.0.1', $(SAMPLE_PORT)))]"; \
	$(MAKE) --no-print-directory faces CRAWL=$(SAMPLE)/crawl/crawl.txt OUT=$(SAMPLE)/faces STEPS=$(SAMPLE_FACES_STEPS) \
	  TRAIN_ARGS="$(SAMPLE_FACES_TRAIN_ARGS)" FACES_DEDUP_ARGS="--hash-model $(SAMPLE)/lsun/dedup/hash_model.pt" \
	  FACES_ARGS="--allow-private-addresses --local-root pipelines/sample" \
	  AUDIT_ARGS="$(SAMPLE_AUDIT_ARGS)"

pipelines: sample-lsun sample-faces ## both pipelines on the bundled sample, then check their outputs
	$(BIN)/python pipelines/check.py $(SAMPLE)
