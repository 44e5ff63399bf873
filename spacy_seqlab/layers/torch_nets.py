"""The torch modules behind the recurrent layers. Only their builders import this
module, after :func:`require_torch`; importing it without torch names the extra."""
from typing import Dict, Optional

from thinc.api import get_torch_default_device
from thinc.types import Ints1d

from .torch_wrapper import require_torch

torch = require_torch("spacy_seqlab.layers.torch_nets")


class PackedRNN(torch.nn.Module):
    """A torch RNN built once its input width is known: at ``initialize``, or from the
    weights when a model is deserialized."""

    def __init__(self, cell: str, hidden: int, depth: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.config = {
            "hidden_size": hidden,
            "num_layers": depth,
            "bidirectional": bidirectional,
            "dropout": dropout if depth > 1 else 0.0,
        }
        self.cell = cell
        self.dropout = torch.nn.Dropout(dropout)
        self.rnn: Optional[torch.nn.RNNBase] = None

    def build(self, nI: int) -> None:
        cell = getattr(torch.nn, self.cell.upper())  # "lstm" -> torch.nn.LSTM, "gru", "rnn"
        self.rnn = cell(nI, **self.config).to(get_torch_default_device())

    def load_state_dict(self, state_dict: Dict[str, "torch.Tensor"], *args, **kwargs):
        self.build(state_dict["rnn.weight_ih_l0"].shape[1])
        return super().load_state_dict(state_dict, *args, **kwargs)

    def forward(self, X: "torch.Tensor", lengths: Ints1d) -> "torch.Tensor":
        """X: (T, B, nI) sorted longest first; lengths: (B,) numpy. Empty rows (length 0)
        read one padding step whose output the caller drops."""
        cpu_lengths = torch.as_tensor(lengths, dtype=torch.int64).clamp(min=1)
        packed = torch.nn.utils.rnn.pack_padded_sequence(self.dropout(X), cpu_lengths)
        Y, _ = torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], total_length=X.shape[0])
        return self.dropout(Y)


class CharLSTM(torch.nn.Module):
    """Char embeddings -> BiLSTM; returns the final forward and backward states."""

    def __init__(self, nV: int, char_width: int, hidden: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(nV, char_width)
        self.lstm = torch.nn.LSTM(char_width, hidden, batch_first=True, bidirectional=True)

    def forward(self, ids: "torch.Tensor", lengths: Ints1d) -> "torch.Tensor":
        """ids: (n_words, longest) padded; lengths: (n_words,) numpy, all >= 1."""
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            self.embed(ids), torch.as_tensor(lengths, dtype=torch.int64),
            batch_first=True, enforce_sorted=False,
        )
        _, (final, _) = self.lstm(packed)
        return torch.cat([final[0], final[1]], dim=1)
