"use client";
import Link from "next/link";
import { logoutApiV1AuthLogoutPost } from "@/client/sdk.gen.ts";
import { useSession } from "./session.tsx";

export function Nav() {
  const { session } = useSession();
  async function logout() {
    await logoutApiV1AuthLogoutPost();
    // A full load: no page state of the session survives it.
    window.location.assign("/login?logged_out=1");
  }
  return (
    <nav aria-label="Main">
      <Link href="/" className="brand">
        Rampart
      </Link>
      {session ? (
        <ul>
          <li><Link href="/assessments">Assessments</Link></li>
          <li><Link href="/questionnaire">New assessment</Link></li>
          <li><Link href="/team">Team</Link></li>
          <li><Link href="/billing">Billing</Link></li>
          <li>
            <button type="button" onClick={logout} className="link-button">
              Log out
            </button>
          </li>
        </ul>
      ) : (
        <ul>
          <li><Link href="/login">Log in</Link></li>
          <li><Link href="/signup">Sign up</Link></li>
        </ul>
      )}
    </nav>
  );
}
