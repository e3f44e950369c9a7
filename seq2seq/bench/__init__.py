"""``seq2seq-bench``'s parts: the machine's reference rate and memory (:mod:`.machine`), the
benchmarked models and their synthetic batches (:mod:`.workloads`), and the measures
(:mod:`.measure`)."""
