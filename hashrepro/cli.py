"""``hashrepro`` / ``lightning`` / ``python -m hashrepro``: one LightningCLI in subclass mode.

YAML names models and data by short class names (``class_path: HashCNN``). Every run gets the
retrieval evaluator (``evaluator:``), a checkpoint on validation mAP (``checkpoint:``), the run
guard (``guard:``, stops diverged runs) and, by default, an offline W&B logger grouped and tagged
by dataset, model, variant and bits. After ``fit``, the best checkpoint is tested on the query
set against the database (``--test_after_fit``).

Every run writes into its own directory, ``results/runs/<run name>/<time>-<subcommand>/``
(``trainer.default_root_dir`` changes the ``results/runs`` part): its ``config.yaml``,
``checkpoints/`` and W&B files. Saved splits go to ``results/splits``.

Exit status from the shell: 0 on success, 2 on a usage, configuration or data error (one line
on stderr), 1 on a failed run (a diverged run: one line), 130 when interrupted (Ctrl-C).
``predict`` writes the packed codes of ``data.predict_split`` (default ``database``) to
``codes_writer.output`` (default ``codes.npz``). ``search`` is not a Trainer command: ``main``
hands it to :mod:`hashrepro.search` (``hashrepro search --help``).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

import hashrepro.data  # noqa: F401  (registers the DataModules for short class names)
from hashrepro.callbacks import CodesWriter, RetrievalEvaluator, RunGuard
from hashrepro.callbacks.guard import DivergenceError
from hashrepro.data.base import RetrievalDataModule
from hashrepro.data.formats import DataFileError
from hashrepro.models import DPSH, HashCNN, HashingModule, ReconstructHashing

MODELS = (DPSH, HashCNN, ReconstructHashing)  # imported, so YAML can name them by class name
WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"
RUNS_ROOT = Path("results/runs")

#: Sizes a model takes from its data: DataModule property -> model init argument of that name.
#: A model without the argument is left alone (jsonargparse skips a link whose target its class
#: lacks), so each model declares only what it needs.
DATA_LINKS = ("num_classes", "num_items", "multilabel")
SEARCH_EPILOG = (
    "Also: `hashrepro search --help` ranks the codes file of `predict` around a query "
    "(not a Trainer subcommand)."
)


class ConfigError(ValueError):
    """A configuration the classes reject (a constructor's ValueError, an impossible protocol)."""


# ------------------------------------------------------------------------------- parser errors
def subclass_names(base: type) -> list[str]:
    """Short names of the concrete subclasses of ``base`` that are importable here."""
    seen, todo = set(), list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo.extend(cls.__subclasses__())
    return sorted({c.__name__ for c in seen if not c.__name__.startswith("_")})


def condense(message: str, options: list[str]) -> str:
    """One line from jsonargparse's multi-line error ``message``.

    Unknown classes list the available short names, unknown options suggest close ones, and
    nested errors become ``key.init_args.key: innermost message``.
    """
    lines = [ln.strip(" -") for ln in message.splitlines() if ln.strip(" -")]
    keys = re.findall(r'Parser key "([^"]+)"', message)
    unknown = re.search(r"Expected a dot import path string: (\S+)", message) or re.search(
        r"Expected a path but (\S+) either not accessible or invalid", message
    )
    if unknown and keys and keys[0] in ("model", "data"):
        base = HashingModule if keys[0] == "model" else RetrievalDataModule
        names = ", ".join(subclass_names(base))
        return f"unknown {keys[0]} class {unknown.group(1)!r}; available: {names}"
    if lines and lines[0].startswith("unrecognized arguments:"):
        given = [a.split("=")[0] for a in lines[0].split(":", 1)[1].split() if a.startswith("--")]
        close = [m for g in given for m in difflib.get_close_matches(g, options, n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"{lines[0]}{hint}"
    noise = ("Subtypes:", "Errors:", "Given value", "Does not validate", "Expected a <class")
    details = [ln for ln in lines if not ln.startswith(noise) and "Parser key" not in ln]
    types = re.findall(r"Expected a <class '(\w+)'>", message)
    given = re.search(r"Given value: (.*)", message)
    if not details and types:  # a value of the wrong type: the types it may have, and the value
        expected = " or ".join(types).replace("NoneType", "null")
        details = [f"expected {expected}" + (f", got {given.group(1)!r}" if given else "")]
    detail = details[-1] if details else (lines[0] if lines else message)
    if not keys:
        return detail
    path = keys[0] + "".join(
        f".init_args.{k}" if "class_path" in message else f".{k}" for k in keys[1:]
    )
    return f"{path}: {detail}"


class HashreproParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors are one line (no 65-line usage block first)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print ``error: <one line>`` and exit 2 (jsonargparse's debug mode keeps raising)."""
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        sys.stderr.write(f"error: {condense(message, options)} (see {parser.prog} --help)\n")
        raise SystemExit(2)


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception of ``err``'s cause/context chain."""
    seen: set[int] = set()
    while id(err) not in seen and (err.__cause__ or err.__context__) is not None:
        seen.add(id(err))
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err


def file_error(err: BaseException) -> FileNotFoundError | DataFileError | None:
    """The missing-file or data-file error that ``err`` is or was caused by, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, (FileNotFoundError, DataFileError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def import_class(class_path: str) -> type:
    """The class named by a full ``package.module.Class`` path."""
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def build(spec: Any) -> Any:
    """Instantiate a parsed ``class_path`` / ``init_args`` config (one level, no links)."""
    init_args = getattr(spec, "init_args", None)
    return import_class(spec.class_path)(**(init_args.as_dict() if init_args is not None else {}))


def schedule_length(max_epochs: int | None) -> int:
    """The LR schedule's length in epochs: ``trainer.max_epochs`` (Lightning's 1000 if unset)."""
    return 1000 if max_epochs is None else max_epochs


# ------------------------------------------------------------------------------- the CLI
class HashreproCLI(LightningCLI):
    """LightningCLI with the evaluator, a validation-mAP checkpoint, run dirs and W&B grouping."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the always-on callbacks, the test-after-fit switch and the links.

        Links: the data's ``num_classes``, ``num_items`` and ``multilabel`` go to the model's
        arguments of those names once the DataModule exists (it loads its labels for them), the
        size of its training split to ``num_train`` (DPSH's memory of N rows), and
        ``trainer.max_epochs`` becomes the cosine schedule's ``T_max``, so neither is typed in
        YAML and ``--trainer.max_epochs`` also sets the schedule's length.
        """
        for name in DATA_LINKS:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
        parser.link_arguments(
            "data.train_size", "model.init_args.num_train", apply_on="instantiate"
        )
        parser.link_arguments(
            "trainer.max_epochs",
            "model.init_args.scheduler.init_args.T_max",
            compute_fn=schedule_length,
            apply_on="parse",
        )
        parser.add_lightning_class_args(RetrievalEvaluator, "evaluator")
        parser.add_lightning_class_args(CodesWriter, "codes_writer")  # writes during predict
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(RunGuard, "guard")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/mAP",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-{epoch}",
                "checkpoint.save_last": True,
            }
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="After fit, test the best checkpoint (selected on validation mAP).",
        )

    @property
    def _cfg(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        """Give the run its own directory; fill W&B group, tags and run name."""
        cfg = self._cfg
        info = run_info(cfg)
        name = (
            f"{info['model']}-{info['variant']}-{info['dataset']}-{info['bits']}b-"
            f"seed{cfg.get('seed_everything')}"
        )
        self.run_dir = new_run_dir(
            Path(cfg.trainer.get("default_root_dir") or RUNS_ROOT) / name, self.subcommand
        )
        cfg.trainer.default_root_dir = str(self.run_dir)
        if cfg.get("checkpoint") is not None and not cfg.checkpoint.get("dirpath"):
            cfg.checkpoint.dirpath = str(self.run_dir / "checkpoints")
        logger = cfg.get("trainer", {}).get("logger")
        for lg in logger if isinstance(logger, list) else [logger]:
            if getattr(lg, "class_path", None) == WANDB_LOGGER:
                init = lg.init_args
                if init.get("save_dir") in (None, "", "."):  # "." is WandbLogger's default
                    init.save_dir = str(self.run_dir)
                init.group = init.group or f"{info['dataset']}-{info['bits']}bits"
                init.tags = list(init.tags or []) + [
                    info["dataset"],
                    info["model"],
                    info["variant"],
                    f"{info['bits']}bits",
                ]
                init.name = init.name or name
                init.job_type = init.job_type or self.subcommand

    def instantiate_classes(self) -> None:
        """Instantiate; constructor errors become one-line :class:`ConfigError` s.

        When a file is missing, every missing file of the data and model is named: the
        DataModule is built (and reads its labels, for the links) before the model, so without
        this a run lacking both its data and a model file (e.g. CNN-F weights) would report
        only the data, and fail on the model only after the data is found. A corrupt or
        inconsistent file is re-raised as the reader's one-line :class:`DataFileError`.
        """
        try:
            super().instantiate_classes()
        except (FileNotFoundError, ValueError, TypeError) as err:
            cause = file_error(err)  # jsonargparse may wrap it in a ValueError
            if cause is None:
                raise ConfigError(str(root_cause(err)).splitlines()[0]) from err
            if not isinstance(cause, FileNotFoundError):
                raise cause from None
            errors = [cause]
            for other in (self._data_error(), self._model_file_error()):
                if other is not None and str(other) not in map(str, errors):
                    errors.append(other)
            raise FileNotFoundError("; also ".join(map(str, errors))) from None
        for lg in self.trainer.loggers:  # Lightning 2.6 passes anonymous=None: wandb warns
            init = getattr(lg, "_wandb_init", None)
            if isinstance(init, dict):
                init.pop("anonymous", None)

    def _data_error(self) -> Exception | None:
        """The error of the configured DataModule's ``check_files()``, if it has one."""
        data = self._cfg.get("data")
        if data is None or not getattr(data, "class_path", None):
            return None
        check = getattr(import_class(data.class_path), "check_files", None)
        if check is None:
            return None
        try:
            dm = build(data)
            if getattr(dm, "download", False):
                return None  # the files come with the download
            check(dm)
        except (FileNotFoundError, ValueError) as err:
            return err
        return None

    def _model_file_error(self) -> FileNotFoundError | None:
        """A missing file of a model part given by class (e.g. a backbone's weights), if any."""
        model = self._cfg.get("model")
        init_args = getattr(model, "init_args", None)
        for value in vars(init_args).values() if init_args is not None else ():
            if not getattr(value, "class_path", None):
                continue
            try:
                build(value)
            except FileNotFoundError as err:
                return err
            except Exception:  # noqa: BLE001  (only a hint for the message)
                continue
        return None

    def _prepare_run(self) -> None:
        """Check the data files and the protocol, then make the run directory.

        Runs before training starts, and before a W&B run opens: missing or corrupt files and
        an impossible protocol stop here with one line.
        """
        dm = self.datamodule
        check = getattr(dm, "check_files", None)
        if callable(check):
            check()
        try:
            _ = dm.split  # draws (or reads) the protocol's index sets
        except DataFileError:
            raise
        except ValueError as err:
            raise ConfigError(str(err).splitlines()[0]) from err
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def before_fit(self) -> None:
        """Check the data; make the run directory."""
        self._prepare_run()

    def before_validate(self) -> None:
        """Check the data; make the run directory."""
        self._prepare_run()

    def before_test(self) -> None:
        """Check the data; make the run directory."""
        self._prepare_run()

    def before_predict(self) -> None:
        """Check the data; make the run directory."""
        self._prepare_run()

    # ----------------------------------------------------------------- subcommands
    def _call(self, fn: Any, **kwargs: Any) -> Any:
        """Run a Trainer method; Lightning turns Ctrl-C into ``sys.exit(1)``: undo that."""
        try:
            return fn(**kwargs)
        except SystemExit:
            if self.trainer.interrupted:
                raise KeyboardInterrupt from None
            raise

    def fit(self, **kwargs: Any) -> None:
        """``trainer.fit`` (Ctrl-C raises KeyboardInterrupt)."""
        self._call(self.trainer.fit, **kwargs)

    def validate(self, verbose: bool = True, **kwargs: Any) -> Any:
        """``trainer.validate``, then the ``val/`` metrics as one column."""
        out = self._call(self.trainer.validate, verbose=False, **kwargs)
        if verbose:
            print_metrics(self.trainer.callback_metrics, "val/")
        return out

    def test(self, verbose: bool = True, **kwargs: Any) -> Any:
        """``trainer.test``, then the ``test/`` metrics as one column."""
        out = self._call(self.trainer.test, verbose=False, **kwargs)
        if verbose:
            print_metrics(self.trainer.callback_metrics, "test/", kwargs.get("ckpt_path"))
        return out

    def after_fit(self) -> None:
        """Test the checkpoint chosen on validation mAP (never on the test queries)."""
        if not self._cfg.get("test_after_fit", True):
            return
        if self.trainer.fast_dev_run or self.trainer.checkpoint_callback is None:
            ckpt = None
        else:
            ckpt = self.trainer.checkpoint_callback.best_model_path or None
        self.test(model=self.model, datamodule=self.datamodule, ckpt_path=ckpt)


@rank_zero_only
def print_metrics(metrics: dict[str, Any], prefix: str, ckpt: str | None = None) -> None:
    """Print the metrics whose names start with ``prefix``, one per line, names in full."""
    rows = {k: float(v) for k, v in sorted(metrics.items()) if k.startswith(prefix)}
    if not rows:
        return
    width = max(len(k) for k in rows)
    source = f" (checkpoint {ckpt})" if ckpt else ""
    lines = [f"{prefix.rstrip('/')} results{source}:"]
    lines += [f"  {k:<{width}}  {v:.4f}" for k, v in rows.items()]
    print("\n".join(lines), flush=True)


def new_run_dir(parent: Path, subcommand: str | None) -> Path:
    """``parent/<YYYYmmdd-HHMMSS>-<subcommand>``, with a suffix if that exists already."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{subcommand or 'run'}"
    path, n = parent / stem, 1
    while path.exists():
        n += 1
        path = parent / f"{stem}-{n}"
    return path


def run_info(cfg: Any) -> dict[str, Any]:
    """Dataset, model, variant and bits of a run, from its parsed config."""
    model, data = cfg.get("model"), cfg.get("data")
    model_args = getattr(model, "init_args", {}) or {}
    return {
        "model": str(getattr(model, "class_path", "model")).rsplit(".", 1)[-1],
        "dataset": str(getattr(data, "class_path", "data")).rsplit(".", 1)[-1],
        "variant": model_args.get("variant", "proposed"),
        "bits": model_args.get("num_bits", "?"),
    }


# ------------------------------------------------------------------------------- entry point
class _DropTips(logging.Filter):
    """Drops Lightning's advertising tips (``💡 Tip: ... try installing litlogger``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


def quiet_third_party() -> None:
    """Silence the messages a user cannot act on: Lightning's tips and internal deprecations."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter is intended.*")
    # every run has its own directory, so a checkpoint read by validate/test/predict always
    # comes from another one
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from .*")


def main(args: list[str] | None = None) -> Any:
    """Run the command line.

    ``search`` is not a Trainer subcommand: it is dispatched to :mod:`hashrepro.search` before
    LightningCLI parses anything. Every other command is LightningCLI's.

    Args:
        args: the arguments; ``None`` reads ``sys.argv`` (the shell).

    Returns:
        Called from Python with ``args``: the CLI object (or the search result). From the shell:
        None, so that ``sys.exit(main())`` exits 0 after a successful run.

    From the shell, errors are one line on stderr: exit 2 for usage, configuration and data
    errors, 1 for a diverged run, 130 for Ctrl-C. From Python they are raised.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    from_shell = args is None
    argv = sys.argv[1:] if from_shell else list(args)
    search = argv[:1] == ["search"]
    try:
        if search:
            from hashrepro.search import search_main

            result = search_main(argv[1:])
        else:
            result = make_cli(args)
    except (FileNotFoundError, ImportError, ConfigError, DataFileError) as err:
        if not from_shell:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as err:
        if not (from_shell and search):  # the search command's bad input: one line
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except DivergenceError as err:
        if not from_shell:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        if not from_shell:
            raise
        print("interrupted: finished checkpoints are kept in the run directory", file=sys.stderr)
        raise SystemExit(130) from None
    return None if from_shell else result


def cli_kwargs(args: list[str] | None, run: bool = True) -> dict[str, Any]:
    """The LightningCLI arguments of this command line (also used to resolve Table 2 cells)."""
    return {
        "model_class": HashingModule,
        "datamodule_class": RetrievalDataModule,
        "subclass_mode_model": True,
        "subclass_mode_data": True,
        "seed_everything_default": 0,
        "parser_class": HashreproParser,
        "trainer_defaults": {
            "logger": {"class_path": WANDB_LOGGER, "init_args": {"project": "hashrepro"}},
        },
        "save_config_kwargs": {"overwrite": True},
        "parser_kwargs": {"epilog": SEARCH_EPILOG},  # the main parser's help
        "auto_configure_optimizers": False,
        "args": args,
        "run": run,
    }


_PARSER: Any = None


def resolve_config(args: list[str]) -> dict[str, Any]:
    """The full configuration ``hashrepro fit`` would run with ``args``, every default filled in.

    Parses only: nothing is instantiated, no data is read (Table 2 fingerprints its cells so).
    """
    global _PARSER
    quiet_third_party()
    if _PARSER is None:

        class _ParseOnly(HashreproCLI):
            def before_instantiate_classes(self) -> None:
                pass

            def instantiate_classes(self) -> None:
                pass

        _PARSER = _ParseOnly(**cli_kwargs(args, run=False)).parser
        _PARSER.exit_on_error = False  # raise (an ArgumentError), as a library call should
    config = _PARSER.parse_args(args)
    return yaml.safe_load(_PARSER.dump(config, skip_link_targets=False))


def make_cli(args: list[str] | None, run: bool = True) -> HashreproCLI:
    """Build the LightningCLI and run its subcommand (``run=False``: build only, no subcommand)."""
    quiet_third_party()
    return HashreproCLI(**cli_kwargs(args, run))


if __name__ == "__main__":
    main()
