"""vokter: the command-line client of vokterd.

The one place where errors become what a person sees: one line on stderr and an exit code
(0 ok, 1 refused or failed, 2 usage). No traceback reaches a user.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from agent.api import EXIT_REFUSED, EXIT_USAGE, VokterError
from cli.commands.access import access
from cli.commands.anonymise import anonymise
from cli.commands.approval import approval
from cli.commands.audit import audit
from cli.commands.certificate import certificate, verify_certificate_command
from cli.commands.copy import copy_group
from cli.commands.crypto import decrypt, encrypt
from cli.commands.dataset import dataset
from cli.commands.demo import demo
from cli.commands.hold import hold
from cli.commands.keys import keys
from cli.commands.lifecycle import lifecycle
from cli.commands.member import member
from cli.commands.notices import notices
from cli.commands.policy import policy
from cli.commands.project import project
from cli.commands.scan import scan
from cli.commands.status import status
from cli.commands.violations import violations
from cli.context import CliState
from cli.output import error_line


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", envvar="VOKTER_CONFIG", metavar="FILE",
              help="Config file naming the daemon's socket (default /etc/vokter/vokter.toml).")
@click.option("--socket", metavar="PATH", help="Talk to the daemon on this socket instead.")
@click.version_option(package_name="vokter", prog_name="vokter")
@click.pass_context
def cli(ctx: click.Context, config: str | None, socket: str | None) -> None:
    """Vokter keeps the access lists, storage rules and audit trail of research projects.

    \b
    Examples:
      vokter status
      vokter project list
      sudo vokter project create p1234 --title "Diabetes and income" \\
          --leader alice --end-date 2029-12-31
      vokter policy check /etc/vokter/policies/default.toml
      vokter demo
    """
    ctx.obj = CliState(config=config, socket=socket)


cli.add_command(project)
cli.add_command(member)
cli.add_command(access)
cli.add_command(audit)
cli.add_command(keys)
cli.add_command(encrypt)
cli.add_command(decrypt)
cli.add_command(status)
cli.add_command(policy)
cli.add_command(anonymise)
cli.add_command(lifecycle)
lifecycle.add_command(certificate)
lifecycle.add_command(verify_certificate_command)
cli.add_command(notices)
cli.add_command(demo)
cli.add_command(violations)
cli.add_command(dataset)
cli.add_command(approval)
cli.add_command(scan)
cli.add_command(hold)
cli.add_command(copy_group)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Without standalone mode click *returns* the code of a command that exits on purpose
        # (e.g. 'policy check' finding problems) instead of raising it: pass it on.
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="vokter",
                        standalone_mode=False)
        if isinstance(code, int) and code != 0:
            return code
    except click.exceptions.Exit as done:
        return int(done.exit_code or 0)
    except click.exceptions.Abort:
        error_line("aborted")
        return EXIT_REFUSED
    except click.exceptions.NoArgsIsHelpError as bare:
        print(bare.ctx.get_help(), file=sys.stderr)
        return EXIT_USAGE
    except click.ClickException as usage:
        error_line(" ".join(usage.format_message().split()))
        ctx = getattr(usage, "ctx", None)
        if ctx is not None:
            print(f"Try '{ctx.command_path} --help' for help.", file=sys.stderr)
        return EXIT_USAGE if usage.exit_code == EXIT_USAGE else EXIT_REFUSED
    except VokterError as error:
        error_line(error.one_line())
        return error.exit_code
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as unexpected:  # the last resort: one line, no traceback
        # VokterError masks identity numbers in the message, like every error's.
        last = VokterError(f"unexpected {type(unexpected).__name__}: {unexpected}",
                           hint="nothing more is known; report it with the command you ran")
        error_line(last.one_line())
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
