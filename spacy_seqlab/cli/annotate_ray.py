"""The Ray engine of ``seqlab-annotate``: Ray Data ``map_batches`` over the shard plan.

Each row of the dataset is one shard's spec; a pool of ``workers`` actors, each loading
the pipeline once, reads, annotates and writes its shards (the output folder must be
shared by all nodes). An actor whose process dies is restarted and its shard retried
(``max_restarts`` / ``max_task_retries``); the atomic, deterministic shard writes make a
retry rewrite the same shard, so every record is written exactly once.
"""
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from .annotate_io import ShardSpec, ShardStats, annotate_shard


class ShardAnnotator:
    """Ray Data callable class: loads the pipeline once, annotates batches of shards."""

    def __init__(
        self, pipeline: str, output_dir: str, fmt: str, batch_size: int, text_key: str,
        id_key: str, code_path: Optional[str],
    ) -> None:
        import spacy
        from spacy.cli._util import import_code

        import_code(code_path)
        self.nlp = spacy.load(pipeline)
        self.output_dir = Path(output_dir)
        self.fmt, self.batch_size, self.text_key, self.id_key = fmt, batch_size, text_key, id_key

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[Any]]:
        stats = [
            annotate_shard(self.nlp, ShardSpec.from_json(spec), self.output_dir, self.fmt,
                           self.batch_size, self.text_key, self.id_key)
            for spec in batch["spec"]
        ]
        return {f.name: [getattr(s, f.name) for s in stats] for f in fields(ShardStats)}


def run_ray(
    pipeline: str, specs: List[ShardSpec], output_dir: Path, fmt: str, batch_size: int,
    workers: int, address: Optional[str], text_key: str, id_key: str, code_path: Optional[str],
) -> Iterator[ShardStats]:
    """Annotate ``specs`` on the Ray cluster at ``address`` (None: start a local one
    with ``workers`` CPUs), yielding each shard's stats as it is written."""
    try:
        import ray
    except ImportError as err:
        raise ValueError("--engine ray needs Ray Data: pip install 'spacy-seqlab[ray]'") from err
    if address is None:
        ray.init(address="local", num_cpus=workers, include_dashboard=False)
    else:
        ray.init(address=address)
    try:
        if not specs:
            return
        ray.data.DataContext.get_current().enable_progress_bars = False
        dataset = ray.data.from_items(
            [{"spec": spec.to_json()} for spec in specs], override_num_blocks=len(specs)
        )
        annotated = dataset.map_batches(
            ShardAnnotator,
            fn_constructor_kwargs=dict(
                pipeline=pipeline, output_dir=str(output_dir), fmt=fmt, batch_size=batch_size,
                text_key=text_key, id_key=id_key, code_path=code_path,
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            # Ray Data's actor pools restart dead actors and retry their tasks by default
            # (max_restarts=-1, max_task_retries=-1); tests/test_annotate.py checks it
        )
        for row in annotated.iter_rows():
            yield ShardStats(**{f.name: f.type(row[f.name]) for f in fields(ShardStats)})
    finally:
        ray.shutdown()
