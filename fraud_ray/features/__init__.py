"""Feature definitions and their two executions: offline (``offline``, ``distributed``) and online
(``online`` over ``state``)."""
