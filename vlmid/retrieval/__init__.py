"""Notebook 04's retrieval models: all patch tokens vs scored top-fraction tokens, one objective.

    from vlmid.retrieval import RetrievalConfig, baseline_model, pruned_model, fit, evaluate
    cfg = RetrievalConfig(vocab_size=len(vocab))
    models = {"baseline": baseline_model(cfg), "keep 0.5": pruned_model(cfg, 0.5)}
    logs = fit(models, train_set, epochs=3, batch_size=16)      # Adam, per-epoch wall times
    evaluate(models["keep 0.5"], test_set)                       # recall@1/5/10 both ways + test_seconds

- ``models``           the dual encoder (:class:`RetrievalModel`), notebook 04's models of one seed,
                       token selection and what it keeps, FLOPs predicted and counted, word ids
- ``train``            data tensors, symmetric InfoNCE, round-robin training with per-epoch timing,
                       evaluation, lossy-ness, and notebook 04's tables of results
- ``recall``           recall@k with several captions per image, each image's share of it, and its
                       chance level
- ``flickr8k_report``  the Flickr8k report's numbers, its own two models, patch split, objective,
                       training, "test loss" and FLOPs accounting, rebuilt for the failure analysis
                       (where its -704 came from)

The Flickr8k files themselves (both profiles) are read by :mod:`vlmid.data.flickr8k`;
``flickr8k_root``, ``write_scenes_as_flickr8k``, ``load_flickr8k_splits`` and ``FLICKR8K_SIZES``
are re-exported here.
"""
from ..data.flickr8k import FLICKR8K_SIZES, flickr8k_root, load_flickr8k_splits, write_scenes_as_flickr8k
from .flickr8k_report import (FLICKR8K_REPORT, REPORT_FLOPS_MODELS, ReportImageOnly, ReportMultimodal,
                              fit_report_model, report_cosine_loss, report_failure_checks, report_flops,
                              report_flops_table, report_mean_flops, report_patch_channels, report_patchify,
                              report_target, report_test_loss, train_report_miniature)
from .models import (RetrievalConfig, RetrievalModel, baseline_model, build_vocab, check_keep_ratio, count_flops,
                     encode_captions, flops_table, foreground_tokens, image_flops, keep_top_tokens, kept_mask,
                     kept_token_overlay, kept_token_table, make_models, n_kept, n_parameters, patchify,
                     predicted_image_flops, pruned_model, scorer_only_name, words)
from .recall import chance_recall, image_to_text_ranks, per_image_recall, recall_at_k, text_to_image_ranks
from .train import (RetrievalSet, TrainLog, chance_row, contrastive_loss, data_table, embed, evaluate, fit,
                    images_to_tensor, lossyness, make_set, paired_lossyness, per_image_table, retrieval_table,
                    sample_examples, shared_caption_fraction, speed_table, step_seconds, time_image_encoders,
                    train_step, training_tables)
