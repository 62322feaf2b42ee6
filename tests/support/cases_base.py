"""Operator cases for the protocol's own pieces: identity, scaling, composition."""

from tests.support.operator_checks import OperatorCase
from rsd_sci.physics.base import Identity, Scale

CASES = [
    OperatorCase("identity", lambda dt: Identity(), (2, 1, 8, 8), known_norm=1.0),
    OperatorCase("scale@identity", lambda dt: Scale(-3.0) @ Identity(), (2, 1, 8, 8), complex_input=True,
                 known_norm=3.0),
]
