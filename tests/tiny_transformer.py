"""A tiny random-weight cased BERT saved to a local directory, so transformer configs
train in tests with no model hub: a WordPiece vocabulary trained with ``tokenizers`` on
a few sentences (small, so rare words split into many pieces) and a 2-layer BertModel."""
from pathlib import Path

TEXT = [
    "I like green eggs and ham .", "She ate the cake !", "Dogs bark loudly at night",
    "Paris is very big .", "The will to fight is strong .", "They will go to London .",
    "Apple bought a small company in Berlin for millions of dollars .",
    "The quick brown fox jumps over the lazy dog .", "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
]


def build_tiny_bert(path: Path, vocab_size: int = 120, seed: int = 0) -> Path:
    """Write the tokenizer and model files of a tiny cased BERT to ``path``."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wordpiece.train_from_iterator(TEXT * 5, vocab_size=vocab_size, min_frequency=1)
    wordpiece.save_model(str(path))
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=False)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(str(path))
    return path
