"""The `pocketgan` command line: one verb per pipeline stage, each a thin call into that stage's API.

Verbs are loaded lazily so `pocketgan --help` and torch-free verbs (`run`, `bench`) never import torch.

Example: pocketgan inspect vintage --size 256 --json
"""

from __future__ import annotations

import importlib
import sys

import click

from pocketgan import __version__, console
from pocketgan.errors import PocketGANError

# verb -> "module:attribute" of a click.Command; the module is imported only when the verb runs.
VERBS = {
    "distill": (
        "pocketgan.distill.cli:distill_command",
        "Distill a GAN teacher into a small student generator.",
    ),
    "export": (
        "pocketgan.export.cli:export_command",
        "Export a checkpoint to ONNX / Core ML / TFLite / ExecuTorch, with parity.",
    ),
    "run": (
        "pocketgan.runtime.cli:run_command",
        "Run an exported artifact on photos and folders (torch-free but for .pte).",
    ),
    "bench": (
        "pocketgan.evals.cli:bench_command",
        "Time artifacts: load, first run, p50/p90/p99, peak memory.",
    ),
    "eval": (
        "pocketgan.evals.cli:eval_command",
        "Latency, memory and fidelity of every artifact vs the teacher.",
    ),
    "parity": (
        "pocketgan.evals.cli:parity_command",
        "CI gate: every artifact vs its reference; JUnit output.",
    ),
    "explain": (
        "pocketgan.export.explain:explain_command",
        "Per-layer divergence of an artifact from its torch source.",
    ),
    "inspect": ("pocketgan.inspect:inspect_command", "Parameters, MACs, ops and exportability of a model."),
    "demo": ("pocketgan.demo:demo_command", "The whole pipeline on the embedded default teacher."),
}


class LazyGroup(click.Group):
    def invoke(self, ctx):
        # Before the verb's module is imported (click resolves the verb before the group callback runs):
        # loggers that libraries create on import must already be the quiet kind.
        own_process = bool(ctx.obj and ctx.obj.get("own_process"))
        console.configure(ctx.params.get("verbose", False), ctx.params.get("log_file"), native=own_process)
        return super().invoke(ctx)

    def list_commands(self, ctx):
        return list(VERBS)

    def get_command(self, ctx, name):
        if name not in VERBS:
            return None
        target, short_help = VERBS[name]
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return _not_built(name, short_help)
            raise
        return getattr(module, attribute)

    def format_commands(self, ctx, formatter):
        # Short help from the table, so `pocketgan --help` imports no stage.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_text) for name, (_, help_text) in VERBS.items()])


def _not_built(name: str, short_help: str) -> click.Command:
    @click.command(name=name, help=f"{short_help} (not available in this build)")
    def missing():
        raise click.ClickException(f"'{name}' is not available in this build of pocketgan")

    return missing


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pocketgan")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log debug messages, and show other libraries' warnings and logs."
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Send other libraries' warnings and logs (hidden by default) to this file.",
)
def cli(verbose: bool, log_file: str | None) -> None:
    """PocketGAN: distill, quantize, export and verify GAN generators for phones.

    \b
    Examples:
      pocketgan inspect vintage --size 256
      pocketgan distill --preset quick --out runs/quick
      pocketgan export runs/quick/best.pt --format all --precision fp32,int8 --out dist/
      pocketgan run dist/student.fp32.onnx photo.jpg -o out/
    """


def usage_error_line(exc: click.UsageError) -> str:
    """Click's usage error as one line: `error: <what>; see 'pocketgan VERB --help'`."""
    command = exc.ctx.command_path if exc.ctx is not None else "pocketgan"
    message = " ".join(exc.format_message().split())
    return f"error: {message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: typed errors become one line on stderr and their exit code."""
    try:
        code = cli.main(args=argv, prog_name="pocketgan", standalone_mode=False, obj={"own_process": True})
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(usage_error_line(exc), err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except PocketGANError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    finally:
        console.restore_native_stderr()


if __name__ == "__main__":
    main()
