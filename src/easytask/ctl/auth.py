"""``easytaskctl auth …``: log in to a server, log out, and say who the CLI acts as."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Mapping

from easytask.core.errors import CtlError, NotAuthenticatedError
from easytask.ctl.client import EXIT_OK, EXIT_UNREACHABLE, stored_login
from easytask.ctl.context import Context, add_output, usage_error
from easytask.ctl.records import health_to_dict, user_to_dict
from easytask.ctl.render import emit, render_fields


def ask(prompt: str, *, secret: bool) -> str:
    """Read a value from the terminal; refused (exit 2) when there is no terminal to ask."""
    if not sys.stdin.isatty():
        raise usage_error(f"{prompt.strip(': ').lower()} not given and stdin is not a terminal")
    try:
        return getpass.getpass(prompt) if secret else input(prompt)
    except EOFError:
        raise usage_error(f"{prompt.strip(': ').lower()} not given") from None


def read_password(args: argparse.Namespace) -> str:
    """``-p``, else one line of stdin with ``--password-stdin``, else a prompt."""
    if args.password is not None:
        return str(args.password)
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return ask("Password: ", secret=True)


def cmd_login(args: argparse.Namespace, ctx: Context) -> int:
    if args.password is not None and args.password_stdin:
        raise usage_error("give -p PASSWORD or --password-stdin, not both")
    username = args.username or ask("Username: ", secret=False)
    password = read_password(args)
    reply = ctx.client().login(username, password)
    logins = ctx.config.logins
    if logins is None:
        raise CtlError("no place to keep the login (logins file unknown)")
    logins.put(stored_login(ctx.config.server, reply))
    out = ctx.out
    out.print(f"Logged in as {reply.user.username}")
    out.print(f"Instance '{reply.instance}' selected.")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace, ctx: Context) -> int:
    logins, login = ctx.config.logins, ctx.config.login
    if logins is None or login is None:
        raise CtlError(f"not logged in to {ctx.config.server}")
    try:
        ctx.client().logout()
    except NotAuthenticatedError:
        pass  # the server had already ended the session: logged out all the same
    except CtlError as exc:
        if exc.exit_code != EXIT_UNREACHABLE:
            raise
        raise CtlError(
            f"logged out here, but {ctx.config.server} could not be told ({exc.message}); "
            "the tokens stay valid there until they expire",
            EXIT_UNREACHABLE,
        ) from None
    finally:
        logins.remove(login.server)
    ctx.out.print("Logged out successfully.")
    return EXIT_OK


def whoami_fields(me: Mapping[str, object]) -> list[tuple[str, object]]:
    name = f"{me['first_name']} {me['last_name']}".strip()
    return [
        ("Username", me["username"]),
        ("Email", me["email"]),
        ("Name", name),
        ("Role", me["role"]),
        ("Active", me["active"]),
        ("Instance", me["instance"]),
        ("Timezone", me["timezone"]),
    ]


def cmd_whoami(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    me = user_to_dict(client.whoami())
    health = health_to_dict(client.health())
    me["instance"], me["timezone"] = health["instance"], health["timezone"]
    emit(ctx.out, args.output, me, lambda: [render_fields("Current user", whoami_fields(me))])
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    auth = sub.add_parser("auth", help="log in and out", description="Log in and out.")
    cmds = auth.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser(
        "login",
        parents=[common],
        help="log in; later commands on this server act as you",
        description="Log in to the server. The tokens are kept in ~/.config/easytask/"
        "logins.json (mode 0600, one login per server) and refreshed when they expire.",
    )
    p.add_argument("-u", "--username", help="prompted if absent")
    p.add_argument("-p", "--password", help="prompted if absent (visible to ps: prefer the prompt)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    p.set_defaults(handler=cmd_login)

    p = cmds.add_parser("logout", parents=[common], help="end the login to this server")
    p.set_defaults(handler=cmd_logout)

    p = cmds.add_parser("whoami", parents=[common], help="the account this CLI acts as")
    add_output(p)
    p.set_defaults(handler=cmd_whoami)
