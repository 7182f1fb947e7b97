"""Small models the tests share (tests/ is on sys.path: pytest's rootdir-relative imports)."""
import torch


def random_clip(image: int = 32, patch: int = 4, n_layers: int = 4):
    """A CLIPModel with random weights (seed 0): 32 wide, ``n_layers`` vision blocks, ``image`` px in
    ``patch`` px patches; for token-pruning tests that need the real class, not a trained model."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                         vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                           num_attention_heads=4, image_size=image, patch_size=patch),
        projection_dim=16)
    return CLIPModel(cfg).eval()
