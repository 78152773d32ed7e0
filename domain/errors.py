"""The domain's errors: one tree, so the edge can map each to a response.

    DomainError
    ├── InvalidAmount        a money value that is a float, NaN, infinite or out of range
    ├── InvalidUsage         token counts that are negative, not integers, or of an unknown kind
    ├── InvalidPrice         a price or multiplier that is not a non-negative exact decimal
    ├── InvalidTransition    a command that the aggregate's state does not allow
    └── NotEntitled          a user asks for what they do not hold (a plan)
"""


class DomainError(ValueError):
    """Base of every error raised by the domain model."""


class InvalidAmount(DomainError):
    """A money value that cannot be held exactly or is out of its allowed range."""


class InvalidUsage(DomainError):
    """Token counts that are not non-negative integers of a known kind."""


class InvalidPrice(DomainError):
    """A price or multiplier that is not a non-negative exact decimal."""


class InvalidTransition(DomainError):
    """A command that the aggregate's current state does not allow."""


class NotEntitled(DomainError):
    """A user asks for something they do not hold, such as a plan for a key."""
