"""The modelling core: sorts, expressions, models, and the dense (explicit-state) compiler.

Write a model with `ModelBuilder`; see `model.ownership` for a complete example.
"""

from .dense import DenseModel, Instance, compile_dense
from .errors import ConfigError, EvaluationError, ModelDefinitionError
from .expr import (
    FALSE,
    NONE,
    TRUE,
    And,
    Exists,
    Expr,
    ForAll,
    Iff,
    Implies,
    Ite,
    Not,
    Or,
    Post,
    Some,
)
from .model import Action, Config, Func, Invariant, Model, ModelBuilder, Step
from .render import render_expr
from .sorts import BOOL, Enum, EnumSort, Id, IdSort, Int, IntSort, Opt, OptSort, Sort

__all__ = [
    "Action", "And", "BOOL", "Config", "ConfigError", "DenseModel", "Enum", "EnumSort",
    "EvaluationError", "Exists", "Expr", "FALSE", "ForAll", "Func", "Id", "IdSort", "Iff",
    "Implies", "Instance", "Int", "IntSort", "Invariant", "Ite", "Model", "ModelBuilder",
    "ModelDefinitionError", "NONE", "Not", "Opt", "OptSort", "Or", "Post", "Some", "Sort",
    "Step", "TRUE", "compile_dense", "render_expr",
]
