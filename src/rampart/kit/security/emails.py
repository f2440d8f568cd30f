"""The one canonical form of an email address: what we store, compare, look up, mail and
key rate limits on.

    canonical = NFKC(casefold(NFKC(local))) "@" IDNA-ASCII(NFKC(domain))

- NFKC first, on the whole address: full-width letters (`ａｌｉｃｅ`), ligatures (`ﬁ`) and
  other compatibility forms become their plain letters; `＠` and `．` become `@` and `.`.
- The domain through IDNA (UTS #46 mapping, the `idna` package): case, `。` as a dot,
  Unicode labels, all become one lower-case ASCII (A-label) domain, e.g.
  `BÜCHER.example` → `xn--bcher-kva.example`.
- The local part is casefolded (then NFKC again, as Unicode's NFKC_Casefold does):
  `Alice` = `alice`, `STRASSE` = `straße` = `strasse`. RFC 5321 lets a server treat
  local parts case-sensitively, but no provider we know does, and the unique index was
  case-insensitive before already. Nothing else is removed: no dots, no `+tag`. Those are
  one provider's conventions (Gmail's), and for any other they name different mailboxes.

Mail always goes to the canonical address, so a verification link proves the canonical
mailbox. Spellings that differ only in Unicode compatibility forms or case are one
account, one login limit bucket, one invitation check.
"""

from __future__ import annotations

import unicodedata

import idna

MAX_LENGTH = 320


def canonical_email(address: str) -> str:
    """The canonical form of `address`; ValueError if it cannot be one (no `@`, an empty
    part, a domain IDNA refuses, longer than 320 characters)."""
    text = unicodedata.normalize("NFKC", address.strip())
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("not an email address")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"the domain is not a valid internationalized domain: {exc}") from exc
    local = unicodedata.normalize("NFKC", local.casefold())
    canonical = f"{local}@{ascii_domain}"
    if len(canonical) > MAX_LENGTH:
        raise ValueError(f"longer than {MAX_LENGTH} characters in its canonical form")
    return canonical
