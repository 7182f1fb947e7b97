"""Notebook 04's seed-003 retrieval models: all patch tokens vs scored top-fraction tokens, one objective.

    from vlmid.retrieval import RetrievalConfig, baseline_model, pruned_model, fit, evaluate
    cfg = RetrievalConfig(vocab_size=len(vocab))
    models = {"baseline": baseline_model(cfg), "keep 0.5": pruned_model(cfg, 0.5)}
    logs = fit(models, train_set, epochs=3, batch_size=16)      # Adam, per-epoch wall times
    evaluate(models["keep 0.5"], test_set)                       # recall@1/5/10 both ways + test_seconds

- ``models``  the dual encoder (:class:`RetrievalModel`), token selection, FLOPs predicted and counted,
              word ids, and seed 003's own two models for the failure analysis
- ``train``   data tensors, symmetric InfoNCE, round-robin training with per-epoch timing, evaluation
- ``recall``  recall@k with several captions per image, and its chance level
"""
from .models import (RetrievalConfig, RetrievalModel, SeedImageOnly, SeedMultimodal, baseline_model,
                     build_vocab, check_keep_ratio, count_flops, encode_captions, image_flops,
                     keep_top_tokens, kept_mask, n_kept, n_parameters, patchify, predicted_image_flops, pruned_model,
                     seed_patchify, words)
from .recall import chance_recall, image_to_text_ranks, recall_at_k, text_to_image_ranks
from .train import (FLICKR8K_SIZES, RetrievalSet, flickr8k_root, load_flickr8k_splits, write_scenes_as_flickr8k, TrainLog, contrastive_loss, embed, evaluate, fit, fit_seed_model,
                    images_to_tensor, lossyness, make_set, sample_examples, seed_cosine_loss, seed_test_loss,
                    time_image_encoders, train_step)
