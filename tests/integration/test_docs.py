"""The reference in docs/ stays complete: every function of the extension is documented with
its arguments in order, every setting is listed, and every link inside the repository
resolves."""
import re

from conftest import ROOT

DOCS = ROOT / "docs"


def reference_text():
    return "\n".join(p.read_text() for p in sorted((DOCS / "reference").glob("*.md")))


def test_every_function_is_documented_with_its_arguments(db):
    functions = db.execute("""
        SELECT p.proname, coalesce(p.proargnames[1:p.pronargs], '{}')
          FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
          JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'qortex'
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname <> 'qortex' AND p.prorettype <> 'trigger'::regtype
         ORDER BY 1""").fetchall()
    assert len(functions) > 25
    text = reference_text()
    for name, args in functions:
        signature = re.escape(name) + r"\(" + r"[^)]*?\b".join(
            [""] + [re.escape(a) + r"\b" for a in args]) + r"[^)]*\)"
        assert re.search(signature, text), f"{name}({', '.join(args)}) is not documented"


def test_every_setting_is_documented(db):
    settings = [r[0] for r in db.execute(
        "SELECT name FROM pg_settings WHERE name LIKE 'qortex.%' ORDER BY 1")]
    assert len(settings) >= 9
    text = (DOCS / "settings.md").read_text()
    for s in settings:
        assert f"`{s}`" in text, s


def test_every_link_resolves_inside_the_repository():
    pages = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *DOCS.rglob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to {target}"
