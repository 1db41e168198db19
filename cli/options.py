"""The engine options every training command shares, declared once.

``engine_options`` appends these parameters to a command's signature (Typer reads
``__signature__``) and hands the parsed values to the command as one ``engine`` dict, so
``train``, ``distill`` and later commands cannot drift apart.
"""

import functools
import inspect
from typing import Annotated, Optional

import typer

PANEL = "Engine options"


def _option(*names: str, help: str, panel: str = PANEL, **kwargs):
    return typer.Option(*names, help=help, rich_help_panel=panel, **kwargs)


ENGINE_OPTIONS: list[tuple[str, object, object]] = [
    ("epochs", Annotated[int, _option("-e", "--epochs", help="Training epochs.")], 125),
    ("batch_size", Annotated[int, _option("-bs", "--batch-size", help="Global batch size (split across replicas).")], 64),
    ("eval_batch_size", Annotated[int, _option("-ebs", "--evaluation-batch-size", help="Batch size for evaluation and teacher predictions.")], 128),
    ("optimizer", Annotated[str, _option("-o", "--optimizer", help="adam, rmsprop, sgd, adagrad, adadelta or adamax.")], "adam"),
    ("learning_rate", Annotated[float, _option("-lr", "--learning-rate", help="Initial learning rate.")], 1e-3),
    ("lr_patience", Annotated[int, _option("-lrp", "--learning-rate-patience", help="Epochs without improvement before the LR drops.")], 8),
    ("lr_decay", Annotated[float, _option("-lrd", "--learning-rate-decay", help="Factor the LR is multiplied by on a plateau; 0 keeps it constant.")], 0.1),
    ("lr_min", Annotated[float, _option("-lrm", "--learning-rate-min", help="Lowest learning rate.")], 1e-8),
    ("early_stopping_patience", Annotated[int, _option("-esp", "--early-stopping-patience", help="Epochs without improvement before stopping; 0 disables.")], 15),
    ("clip_norm", Annotated[Optional[float], _option("-cn", "--clip-norm", help="Clip each gradient tensor to this norm.")], None),
    ("clip_value", Annotated[Optional[float], _option("-cv", "--clip-value", help="Clip each gradient element to ±value.")], None),
    ("beta1", Annotated[float, _option("-b1", "--beta1", help="Adam/Adamax beta 1.")], 0.9),
    ("beta2", Annotated[float, _option("-b2", "--beta2", help="Adam/Adamax beta 2.")], 0.999),
    ("rho", Annotated[float, _option("-rho", "--rho", help="RMSprop/Adadelta rho.")], 0.9),
    ("momentum", Annotated[float, _option("-mm", "--momentum", help="SGD momentum.")], 0.0),
    ("decay", Annotated[float, _option("-d", "--decay", help="Inverse-time decay: lr / (1 + decay · step).")], 1e-6),
    ("use_final_model", Annotated[bool, _option("-ufm", "--use-final-model", help="Keep the last epoch's weights instead of the best on validation.")], False),
    ("start_weights", Annotated[Optional[str], _option("-w", "--start-weights", help="Weights file to start the student from.")], None),
    ("reinit", Annotated[bool, _option("--reinit", help="Start the student from fresh random weights instead of its file's.")], False),
    ("val_split", Annotated[float, _option("--val-split", help="Share of the training split held out for validation (stratified).")], 0.3),
    ("data_dir", Annotated[Optional[str], _option("--data-dir", help="Local TFDS data directory.")], None),
    ("seed", Annotated[int, _option("-seed", "--seed", help="Random seed: the same seed gives the same history on CPU.")], 0),
    ("targets", Annotated[str, _option("--targets", help="Teacher soft targets: auto (cache when no augmentation and they fit 1 GiB), online or cache.")], "auto"),
    ("cache_dir", Annotated[Optional[str], _option("--cache-dir", help="Keep cached soft targets on disk here (keyed by teacher weights and data).")], None),
    ("augment", Annotated[str, _option("--augment", help="Training augmentation, comma-separated: flip, crop (default none, as the seed).")], ""),
    ("jit", Annotated[str, _option("--jit", help="XLA: auto (on for GPUs, off for CPUs, as measured), on or off.")], "auto"),
    ("strategy", Annotated[str, _option("--strategy", help="auto, one, mirrored or multiworker (from TF_CONFIG).")], "auto"),
    ("precision", Annotated[str, _option("--precision", help="float32, mixed_float16 (with loss scaling) or mixed_bfloat16.")], "float32"),
    ("resume", Annotated[bool, _option("--resume", help="Continue the run in -out from its last checkpoint (same command plus this flag).", panel="Outputs")], False),
    ("overwrite", Annotated[bool, _option("--overwrite", help="Start again in an -out folder that already holds a run.", panel="Outputs")], False),
    ("out_folder", Annotated[str, _option("-out", "--out-folder", help="Folder for the outputs.", panel="Outputs")], "out"),
    ("prefix", Annotated[str, _option("-res", "--results-name-prefix", help="Prefix for every output file name.", panel="Outputs")], ""),
    ("verbosity", Annotated[int, _option("-v", "--verbosity", help="0: final table only; 1: progress bar; 2: a line per epoch.", panel="Outputs")], 1),
    ("debug", Annotated[bool, _option("--debug", help="Debug-level log file.", panel="Outputs")], False),
]
ENGINE_NAMES = [name for name, _, _ in ENGINE_OPTIONS]


def engine_options(command):
    """Add the shared options to ``command``; it receives them as ``engine: dict``."""
    signature = inspect.signature(command)
    own = [parameter for parameter in signature.parameters.values() if parameter.name != "engine"]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in ENGINE_OPTIONS
    ]

    @functools.wraps(command)
    def wrapper(**kwargs):
        engine = {name: kwargs.pop(name) for name in ENGINE_NAMES}
        return command(**kwargs, engine=engine)

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper
