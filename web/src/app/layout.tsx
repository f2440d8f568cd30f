import type { Metadata, Viewport } from "next";
import { headers } from "next/headers";
import type { ReactNode } from "react";
import { Nav } from "@/components/Nav.tsx";
import { SessionProvider } from "@/components/session.tsx";
import "./globals.css";

export const metadata: Metadata = {
  title: "Rampart",
  description: "Production-readiness assessments and roadmaps for your team.",
};

export const viewport: Viewport = { width: "device-width", initialScale: 1 };

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Reading the request makes every page render per request, so each gets the nonce that
  // src/proxy.ts put in its CSP (Next adds it to its own script tags).
  await headers();
  return (
    <html lang="en">
      <body>
        <a href="#main" className="skip-link">
          Skip to content
        </a>
        <SessionProvider>
          <header>
            <Nav />
          </header>
          <main id="main">{children}</main>
        </SessionProvider>
      </body>
    </html>
  );
}
