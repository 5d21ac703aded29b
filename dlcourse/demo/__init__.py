"""The demo class: `make demo` grades simulated students through the whole nbgrader cycle."""
