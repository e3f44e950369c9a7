"""Robustness under bad input and faults (issue 6): every case is tried for real.

Bad input: a clear error or a counted skip, never a deep traceback.

========================================================  ====================================
case                                                      test
========================================================  ====================================
parallel files with different line counts                 test_translation_data::
                                                          test_line_counts_differ_names_both_
                                                          files_and_counts
non-UTF-8 bytes (error; replaced when configured)         test_translation_data::test_invalid_
                                                          utf8_names_file_and_line, ..._replaced_
                                                          when_configured
empty or whitespace-only pairs; pairs over max length     test_translation_data::test_empty_and_
                                                          overlong_pairs_dropped_and_counted
missing data file or folder; missing annotations or       test_translation_data::test_missing_*;
image root                                                test_caption_input::test_missing_*
missing, truncated or corrupt image; non-image file       test_caption_input::test_bad_image_is_
                                                          an_error_naming_the_file, test_bad_
                                                          images_skipped_and_counted
grayscale, RGBA, palette, CMYK, 16-bit, huge images       test_caption_input::test_odd_modes_and_
                                                          huge_images_are_converted_and_resized
image over data.max_image_pixels: found from its header   test_caption_input::test_image_over_
before any decoding, an error naming file, size, limit    max_image_pixels_is_reported_before_
and key; or skipped and counted                           any_decoding, test_images_over_max_
                                                          image_pixels_are_skipped_and_counted
genuine image over Pillow's limit (10561x16000 PNG)       test_caption_input::test_genuine_image_
within data.max_image_pixels: read and decoded            over_pillows_limit_*
the pixel limit holds in DataLoader workers; a bad value  test_caption_input::test_max_image_
of data.max_image_pixels names the key                    pixels_is_applied_in_loader_workers,
                                                          ..._must_be_a_positive_integer
Karpathy JSON / CSV / JSONL: missing fields, wrong types  test_caption_input::test_malformed_
                                                          annotations_name_file_entry_and_field
misspelt config key; unknown encoder or decoder           test_config_errors
seq2seq-translate input: empty, over-long, emoji, CJK,    test_translate_input
control characters, no trailing newline, CRLF
checkpoint missing, truncated, of the other task, not a   test_checkpoint_errors
training checkpoint; nothing to resume
========================================================  ====================================

Faults:

========================================================  ====================================
SIGKILL mid-epoch, then ``resume=true``: same step count  test_interrupts::test_sigkill_mid_
and the same loss curve as an uninterrupted run           epoch_then_resume_continues_where_it_
                                                          stopped (real subprocesses)
the saved position is the batches training received      test_fault_units::test_loader_
(worker prefetch neither skipped nor replayed)            position_counts_delivered_batches_*
atomic checkpoint writes (a failed or killed save keeps   test_fault_units::test_failed_save_
the previous checkpoint)                                  keeps_previous_checkpoint
Ctrl-C stops cleanly and keeps a checkpoint               test_interrupts::test_ctrl_c_stops_
                                                          cleanly_and_keeps_a_checkpoint
                                                          (subprocess), ..._during_validation_*
NaN loss: stop naming the step, keep the last good        test_training_faults::test_nan_loss_*,
checkpoint; or skip the batch                             test_fault_units::test_nan_*
full disk: the run stops saying the checkpoint was not    test_training_faults::test_full_disk_
written                                                   stops_the_run_saying_the_checkpoint_
                                                          was_not_written
========================================================  ====================================

A new user's first hour (issue 14; test_first_hour unless named):

========================================================  ====================================
case                                                      test
========================================================  ====================================
vocab_size the corpus cannot fill: lowered with a         test_a_vocabulary_the_corpus_cannot_
warning; with hard_vocab_limit one line naming the key    fill_*, test_with_a_hard_limit_*,
(also through the real seq2seq-train)                     test_the_cli_prints_a_tokenizer_*
common Trainer arguments as plain overrides               test_common_trainer_arguments_*
validation off: trains, saves last.ckpt, says so          test_a_run_without_validation_*
files written with the umask's mode (not mkstemp's 0600)  test_files_the_toolkit_writes_*,
                                                          datasets/test_bible::test_prepare_*
no sacrebleu "detokenize" warning on tokenised text;      test_tokenised_text_is_scored_*,
a frozen CNN explained once, not Lightning's alarm        test_a_frozen_backbone_is_explained_*
a whole-run budget that leaves time to test               test_budget_stops_*, test_a_spent_
                                                          budget_*, test_the_test_decoding_*
========================================================  ====================================

Safety (test_safety): a malicious pickle in a checkpoint (loaded for inference or to resume)
or in a feature cache is refused and never executed; a model config naming foreign code is
refused; tokenizers are stored as plain data (a sentencepiece model as bytes); training
reaches no network; pretrained weights by name without a network fail with how to use a
local file.

``conftest.py`` trains one tiny translation run per session (network blocked), used as the
checkpoint for the command-line tests and as the uninterrupted reference of the resume test.
"""
