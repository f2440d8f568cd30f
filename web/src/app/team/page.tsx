"use client";
import { useCallback, useEffect, useState, type FormEvent } from "react";
import {
  changeRoleApiV1UsersUserIdRolePatch,
  inviteApiV1InvitationsPost,
  listUsersApiV1UsersGet,
  removeUserApiV1UsersUserIdDelete,
} from "@/client/sdk.gen.ts";
import type { UserOut } from "@/client/types.gen.ts";
import { zInvitationIn } from "@/client/zod.gen.ts";
import { ErrorNotice, FieldError } from "@/components/ErrorNotice.tsx";
import { useRequiredSession } from "@/components/session.tsx";
import { useSubmit } from "@/components/useForm.ts";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";

const ROLES = ["owner", "admin", "member", "viewer"] as const;
type Role = (typeof ROLES)[number];

export default function TeamPage() {
  const session = useRequiredSession();
  const [users, setUsers] = useState<UserOut[] | null>(null);
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  const [invited, setInvited] = useState<string | null>(null);
  const invite = useSubmit(zInvitationIn);
  const canManage = session?.role === "owner" || session?.role === "admin";

  const load = useCallback(async () => {
    try {
      setUsers((await call(listUsersApiV1UsersGet())).items);
    } catch (error) {
      if (error instanceof ApiFailure) setProblem(error.problem);
    }
  }, []);
  useEffect(() => {
    if (session) void load();
  }, [session, load]);

  async function act(action: () => Promise<unknown>) {
    setProblem(null);
    try {
      await action();
      await load();
    } catch (error) {
      if (error instanceof ApiFailure) setProblem(error.problem);
    }
  }

  async function onInvite(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    setInvited(null);
    const ok = await invite.submit(
      { email: String(data.get("email") ?? ""), role: String(data.get("role") ?? "member") },
      async (body) => {
        const out = await call(inviteApiV1InvitationsPost({ body, headers: { "Idempotency-Key": crypto.randomUUID() } }));
        setInvited(`Invitation sent to ${out.email} as ${out.role}.`);
      },
    );
    if (ok) form.reset();
  }

  if (!session) return null;
  return (
    <>
      <h1>Team</h1>
      <ErrorNotice problem={problem} />
      {users === null && !problem ? <p role="status">Loading…</p> : null}
      {users ? (
        <table>
          <thead>
            <tr><th scope="col">Email</th><th scope="col">Role</th>{canManage ? <th scope="col">Actions</th> : null}</tr>
          </thead>
          <tbody>
            {users.map((user) => (
              <tr key={user.id}>
                <td>{user.email}{user.email_verified ? "" : " (unconfirmed)"}{user.id === session.user_id ? " (you)" : ""}</td>
                <td>
                  {canManage && user.id !== session.user_id ? (
                    <>
                      <label htmlFor={`role-${user.id}`} className="visually-hidden">Role of {user.email}</label>
                      <select id={`role-${user.id}`} value={user.role}
                        onChange={(e) => act(() => call(changeRoleApiV1UsersUserIdRolePatch({ path: { user_id: user.id }, body: { role: e.target.value as Role } })))}>
                        {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                      </select>
                    </>
                  ) : (
                    user.role
                  )}
                </td>
                {canManage ? (
                  <td>
                    {user.id !== session.user_id ? (
                      <button type="button" className="secondary"
                        onClick={() => { if (window.confirm(`Remove ${user.email}?`)) void act(() => call(removeUserApiV1UsersUserIdDelete({ path: { user_id: user.id } }))); }}>
                        Remove<span className="visually-hidden"> {user.email}</span>
                      </button>
                    ) : null}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {canManage ? (
        <section aria-labelledby="invite-heading">
          <h2 id="invite-heading">Invite someone</h2>
          {invited ? <p className="notice ok" role="status">{invited}</p> : null}
          <ErrorNotice problem={invite.problem} />
          <form onSubmit={onInvite} noValidate>
            <label htmlFor="invite-email">Email</label>
            <input id="invite-email" name="email" type="email" required
              aria-invalid={Boolean(invite.fields.email)} aria-describedby={invite.fields.email ? "invite-email-error" : undefined} />
            <FieldError id="invite-email-error" message={invite.fields.email} />
            <label htmlFor="invite-role">Role</label>
            <select id="invite-role" name="role" defaultValue="member">
              {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
            </select>
            <button type="submit" disabled={invite.busy}>Send invitation</button>
          </form>
        </section>
      ) : (
        <p className="hint">Only owners and admins manage the team.</p>
      )}
    </>
  );
}
