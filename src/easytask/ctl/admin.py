"""``easytaskctl admin …``: user accounts and roles (admins and superadmins)."""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Mapping

from easytask.core.errors import CtlError
from easytask.ctl.auth import ask
from easytask.ctl.client import EXIT_OK
from easytask.ctl.context import Context, add_output, add_paging, usage_error
from easytask.ctl.records import user_to_dict
from easytask.ctl.render import emit, page_line, render_fields, render_table
from easytask.ctl.tasks import load_json_object
from easytask.rpc.v1 import api_pb2 as pb

USER_HEADERS = ("Username", "Email", "Role", "Active")
TEMPORARY_LENGTH = 20


def user_fields(user: Mapping[str, object]) -> list[tuple[str, object]]:
    return [
        ("Username", user["username"]),
        ("Email", user["email"]),
        ("First Name", user["first_name"]),
        ("Last Name", user["last_name"]),
        ("Role", user["role"]),
        ("Active", user["active"]),
        ("Created At", user["created_at"]),
        ("Updated At", user["updated_at"]),
    ]


def cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    request = pb.ListUsersRequest(search=args.search or "", page=args.page, per_page=args.per_page)
    reply = ctx.client().list_users(request)
    users = [user_to_dict(u) for u in reply.users]
    rows = [(u["username"], u["email"], u["role"], u["active"]) for u in users]
    page, per_page = reply.page or args.page, reply.per_page or args.per_page
    emit(
        ctx.out,
        args.output,
        users,
        lambda: [render_table(USER_HEADERS, rows), page_line(page, per_page, reply.total)],
    )
    return EXIT_OK


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    user = user_to_dict(ctx.client().get_user(args.username))
    emit(ctx.out, args.output, user, lambda: [render_fields("User", user_fields(user))])
    return EXIT_OK


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    text, _ = load_json_object(args.file)
    user = ctx.client().create_user(text)
    ctx.out.print(f"User created: {user.username}")
    return EXIT_OK


def cmd_update(args: argparse.Namespace, ctx: Context) -> int:
    _, patch = load_json_object(args.file)
    named = patch.get("username")
    username = args.username or named
    if not isinstance(username, str) or not username:
        raise usage_error('give USERNAME or a "username" in the file')
    if named is not None and named != username:
        raise CtlError(
            f"{args.file}: username {named!r} is not {username!r} (usernames cannot change)"
        )
    patch.pop("username", None)
    user = ctx.client().update_user(username, json.dumps(patch))
    ctx.out.print(f"User updated: {user.username}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    user = ctx.client().delete_user(args.username)
    ctx.out.print(f"User deleted: {user.username}")
    return EXIT_OK


def cmd_reset_password(args: argparse.Namespace, ctx: Context) -> int:
    if args.password is not None and args.temporary:
        raise usage_error("give -p PASSWORD or --temporary, not both")
    if args.temporary:
        password = secrets.token_urlsafe(TEMPORARY_LENGTH)[:TEMPORARY_LENGTH]
    elif args.password is not None:
        password = args.password
    else:
        password = ask("New password: ", secret=True)
        if ask("Repeat the new password: ", secret=True) != password:
            raise CtlError("the two passwords differ; nothing changed")
    user = ctx.client().update_user(args.username, json.dumps({"password": password}))
    ctx.out.print(f"Password reset for user {user.username}")
    if args.temporary:
        ctx.out.print(f"Temporary password: {password}")
    return EXIT_OK


def cmd_set_role(args: argparse.Namespace, ctx: Context) -> int:
    user = ctx.client().update_user(args.username, json.dumps({"role": args.role}))
    ctx.out.print(f"Role set: {user.username} -> {user.role}")
    return EXIT_OK


def cmd_roles_list(args: argparse.Namespace, ctx: Context) -> int:
    roles = [
        {"name": r.name, "description": r.description} for r in ctx.client().list_roles().roles
    ]
    rows = [(r["name"], r["description"]) for r in roles]
    emit(ctx.out, args.output, roles, lambda: [render_table(("Role", "May"), rows)])
    return EXIT_OK


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    admin = sub.add_parser("admin", help="users and roles", description="Users and roles.")
    cmds = admin.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = cmds.add_parser("roles-list", parents=[common], help="the roles and what each may do")
    add_output(p)
    p.set_defaults(handler=cmd_roles_list)

    users = cmds.add_parser("users", help="user accounts", description="User accounts.")
    ucmds = users.add_subparsers(dest="users_command", metavar="COMMAND", required=True)

    p = ucmds.add_parser("list", parents=[common], help="accounts by username")
    p.add_argument("-s", "--search", help="username contains")
    add_paging(p)
    add_output(p)
    p.set_defaults(handler=cmd_list)

    p = ucmds.add_parser("get", parents=[common], help="one account")
    p.add_argument("username", metavar="USERNAME")
    add_output(p)
    p.set_defaults(handler=cmd_get)

    p = ucmds.add_parser(
        "create",
        parents=[common],
        help="create an account from a JSON file",
        description='FILE holds {"username", "password", "email", "first_name", "last_name", '
        '"role", "active"}; username and password (at least 12 characters) are required, '
        "role defaults to viewer.",
    )
    p.add_argument("-f", "--file", required=True, help="user JSON object (- = stdin)")
    p.set_defaults(handler=cmd_create)

    p = ucmds.add_parser(
        "update",
        parents=[common],
        help="change an account from a JSON file",
        description="FILE holds the fields to change (password, email, first_name, last_name, "
        "role, active) and may name the username. A change of role, password or active ends the "
        "user's sessions.",
    )
    p.add_argument("username", nargs="?", metavar="USERNAME", help="default: the file's username")
    p.add_argument("-f", "--file", required=True, help="JSON object of the fields (- = stdin)")
    p.set_defaults(handler=cmd_update)

    p = ucmds.add_parser("delete", parents=[common], help="delete an account (ends its sessions)")
    p.add_argument("username", metavar="USERNAME")
    p.set_defaults(handler=cmd_delete)

    p = ucmds.add_parser(
        "reset-password", parents=[common], help="set a new password (ends the user's sessions)"
    )
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("-p", "--password", help="the new password (prompted if absent)")
    p.add_argument(
        "--temporary",
        action="store_true",
        help=f"generate a random {TEMPORARY_LENGTH}-character password and print it once",
    )
    p.set_defaults(handler=cmd_reset_password)

    p = ucmds.add_parser("set-role", parents=[common], help="change a role (ends the sessions)")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("role", metavar="ROLE", help="viewer, user, operator, admin or superadmin")
    p.set_defaults(handler=cmd_set_role)
