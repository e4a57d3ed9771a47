"""Fanning the collection phase out over processes on this machine, or over a Ray cluster.

Each shard is a round-robin slice of the tasks, sampled by its own process with its own copy of
the model, appending to its own samples file and writing trajectories into the shared SQLite
store (WAL mode takes concurrent writers). The parent then merges the shard files into the
phase's file, so a resumed run sees one file whatever the fan-out was. The user's tasks and
settings are the same either way: only ``workers`` (and ``use_ray``) change.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from agentrt.rft.dart import done_tasks, sample_all
from agentrt.rft.sampling import TaskSamples
from agentrt.rft.tasks import Task, TaskError
from agentrt.trajectory_store import TrajectoryStore


def _shard(tasks: list[dict[str, Any]], out: str, spec: str, store_path: str, kwargs: dict[str, Any]) -> int:
    """One shard, in its own process: load the model, sample, append to ``out``."""
    from agentrt.models.registry import load_model

    model = load_model(spec)
    with TrajectoryStore(store_path) as store:
        rows = sample_all([Task.model_validate(t) for t in tasks], Path(out), model=model, model_spec=spec,
                          store=store, **kwargs)
    return len(rows)


def sample_fanned(
    tasks: list[Task], out: Path, *, spec: str, store_path: Path | str, phase: str, round_no: int, n: int,
    successes: int | None, budget: int, temperature: float, max_tokens: int, workers: int = 1,
    use_ray: bool = False, progress: Callable[[TaskSamples], None] | None = None,
) -> list[TaskSamples]:
    """Sample ``tasks`` (resuming what ``out`` already has); rows come back in task order."""
    kwargs = {"phase": phase, "round_no": round_no, "n": n, "successes": successes, "budget": budget,
              "temperature": temperature, "max_tokens": max_tokens}
    done = done_tasks(out)
    todo = [t for t in tasks if t.id not in done]
    if todo and workers <= 1 and not use_ray:
        from agentrt.models.registry import load_model

        with TrajectoryStore(store_path) as store:
            rows = sample_all(tasks, out, model=load_model(spec), model_spec=spec, store=store, progress=progress,
                              **kwargs)
        return rows
    if todo:
        shards = [todo[i::max(1, workers)] for i in range(max(1, workers))]
        parts = [out.with_name(f"{out.name}.part{i}") for i in range(len(shards))]
        args = [([t.model_dump() for t in shard], str(part), spec, str(store_path), kwargs)
                for shard, part in zip(shards, parts) if shard]
        if use_ray:
            _run_ray(args)
        else:
            with ProcessPoolExecutor(max_workers=len(args), mp_context=multiprocessing.get_context("spawn")) as pool:
                for future in [pool.submit(_shard, *a) for a in args]:
                    future.result()
        _merge(out, parts)
    merged = done_tasks(out)
    missing = [t.id for t in tasks if t.id not in merged]
    if missing:
        raise TaskError(f"{len(missing)} tasks were not sampled (first: {missing[0]}); run again to resume")
    rows = [merged[t.id] for t in tasks]
    if progress:
        for row in rows:
            progress(row)
    return rows


def _merge(out: Path, parts: list[Path]) -> None:
    have = set(done_tasks(out))
    with out.open("a", encoding="utf-8") as f:
        for part in parts:
            for task_id, row in done_tasks(part).items():
                if task_id not in have:
                    f.write(row.model_dump_json() + "\n")
                    have.add(task_id)
    for part in parts:
        part.unlink(missing_ok=True)


def _run_ray(args: list[tuple[Any, ...]]) -> None:
    try:
        import ray
    except ImportError:
        raise TaskError("--ray needs Ray: pip install 'ray[default]' (or drop --ray to fan out over local "
                        "processes with --workers)") from None
    if not ray.is_initialized():
        ray.init(address="auto" if _cluster_address() else None, ignore_reinit_error=True)
    remote = ray.remote(_shard)
    ray.get([remote.remote(*a) for a in args])


def _cluster_address() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))
