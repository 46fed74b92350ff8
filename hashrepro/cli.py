"""``hashrepro`` / ``lightning`` / ``python -m hashrepro``: one LightningCLI in subclass mode.

YAML names models and data by short class names (``class_path: HashCNN``). Every run gets the
retrieval evaluator (``evaluator:``), a checkpoint on validation mAP (``checkpoint:``) and, by
default, an offline W&B logger grouped and tagged by dataset, model, variant and bits. After
``fit``, the best checkpoint is tested on the query set against the database (``--test_after_fit``).
``predict`` writes the packed codes of ``data.predict_split`` (default ``database``) to
``codes_writer.output`` (default ``codes.npz``). ``search`` is not a Trainer command: ``main``
hands it to :mod:`hashrepro.search` (``hashrepro search --help``).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import hashrepro.data  # noqa: F401  (registers the DataModules for short class names)
import hashrepro.models  # noqa: F401  (registers the models for short class names)
from hashrepro.callbacks import CodesWriter, RetrievalEvaluator
from hashrepro.data.base import RetrievalDataModule
from hashrepro.models.base import HashingModule

WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"
SEARCH_EPILOG = (
    "Also: `hashrepro search --help` ranks the codes file of `predict` around a query "
    "(not a Trainer subcommand)."
)


class HashreproCLI(LightningCLI):
    """LightningCLI with the evaluator, a validation-mAP checkpoint and W&B run grouping."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the always-on callbacks and the test-after-fit switch."""
        parser.add_lightning_class_args(RetrievalEvaluator, "evaluator")
        parser.add_lightning_class_args(CodesWriter, "codes_writer")  # writes during predict
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
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

    def before_instantiate_classes(self) -> None:
        """Fill W&B group, tags and run name from the model and data config."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        logger = cfg.get("trainer", {}).get("logger")
        loggers = logger if isinstance(logger, list) else [logger]
        for lg in loggers:
            if getattr(lg, "class_path", None) == WANDB_LOGGER:
                init = lg.init_args
                info = run_info(cfg)
                init.group = init.group or f"{info['dataset']}-{info['bits']}bits"
                init.tags = list(init.tags or []) + [
                    info["dataset"],
                    info["model"],
                    info["variant"],
                    f"{info['bits']}bits",
                ]
                init.name = init.name or (
                    f"{info['model']}-{info['variant']}-{info['dataset']}-"
                    f"{info['bits']}b-seed{cfg.get('seed_everything')}"
                )
                init.job_type = init.job_type or self.subcommand

    def instantiate_classes(self) -> None:
        """Instantiate; when a model file (e.g. CNN-F weights) is missing, name missing data too.

        The model is built before the data files are checked, so without this a run lacking
        both would report only the weights, and fail on the data only after they are found.
        """
        try:
            super().instantiate_classes()
        except (FileNotFoundError, ValueError) as err:
            missing = missing_file_error(err)  # jsonargparse wraps it in a ValueError
            if missing is None:
                raise
            data_error = self._data_error()
            message = str(missing) if data_error is None else f"{data_error}; also {missing}"
            raise FileNotFoundError(message) from None

    def _data_error(self) -> Exception | None:
        """The error of the configured DataModule's ``check_files()``, if it has one."""
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        data = cfg.get("data")
        if data is None or not getattr(data, "class_path", None):
            return None
        module, name = data.class_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        check = getattr(cls, "check_files", None)
        if check is None:
            return None
        try:
            init_args = getattr(data, "init_args", None)
            check(cls(**(init_args.as_dict() if init_args is not None else {})))
        except (FileNotFoundError, ValueError) as err:
            return err
        return None

    def _check_data(self) -> None:
        """Fail before training starts (and before a W&B run opens) if data files are missing."""
        check = getattr(self.datamodule, "check_files", None)
        if callable(check):
            check()

    def before_fit(self) -> None:
        """Check the data files."""
        self._check_data()

    def before_validate(self) -> None:
        """Check the data files."""
        self._check_data()

    def before_test(self) -> None:
        """Check the data files."""
        self._check_data()

    def before_predict(self) -> None:
        """Check the data files."""
        self._check_data()

    def after_fit(self) -> None:
        """Test the checkpoint chosen on validation mAP (never on the test queries)."""
        if not self.config[self.subcommand].get("test_after_fit", True):
            return
        if self.trainer.fast_dev_run or self.trainer.checkpoint_callback is None:
            ckpt = None
        else:
            ckpt = self.trainer.checkpoint_callback.best_model_path or None
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt)


def missing_file_error(err: BaseException) -> FileNotFoundError | None:
    """The FileNotFoundError that ``err`` is or was caused by (through ``__cause__``), if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, FileNotFoundError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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


def main(args: list[str] | None = None) -> Any:
    """Run the command line; ``args=None`` reads ``sys.argv``.

    ``search`` is not a Trainer subcommand: it is dispatched to :mod:`hashrepro.search` before
    LightningCLI parses anything. Every other command is LightningCLI's. Called from Python
    (``args`` given) it returns the CLI or the search result; from the shell it returns None,
    so the console scripts' ``sys.exit(main())`` exits with status 0.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    argv = sys.argv[1:] if args is None else list(args)
    search = argv[:1] == ["search"]
    try:
        if search:
            from hashrepro.search import search_main

            result = search_main(argv[1:])
        else:
            result = make_cli(args)
        return result if args is not None else None
    except (FileNotFoundError, ImportError, ValueError) as err:
        if isinstance(err, ValueError) and not search:  # jsonargparse reports its own
            raise
        if args is not None:  # called from Python: let the caller see the exception
            raise
        print(f"error: {err}", file=sys.stderr)  # from the shell: one line, no traceback
        raise SystemExit(2) from None


def make_cli(args: list[str] | None, run: bool = True) -> HashreproCLI:
    """Build the LightningCLI and run its subcommand (``run=False``: build only, no subcommand)."""
    return HashreproCLI(
        HashingModule,
        RetrievalDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={
            "logger": {
                "class_path": WANDB_LOGGER,
                "init_args": {"project": "hashrepro", "save_dir": "results/runs"},
            },
        },
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"epilog": SEARCH_EPILOG},  # the main parser's help
        auto_configure_optimizers=False,
        args=args,
        run=run,
    )


if __name__ == "__main__":
    main()
