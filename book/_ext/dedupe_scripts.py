"""Drop repeated inline <script> lines from the built pages.

With Jupyter Book 1 (Sphinx 7.4, sphinx-book-theme 1.3) a full build writes the inline
configuration scripts of sphinx-thebe and sphinx-togglebutton twice into every page, and the
browser then reports "Identifier 'THEBE_JS_URL' has already been declared". After the build,
keep the first of identical inline script lines in each HTML file.
"""
from pathlib import Path


def _dedupe_inline_scripts(html: str) -> str:
    seen, lines = set(), []
    for line in html.splitlines(keepends=True):
        text = line.strip()
        if text.startswith("<script>") and text.endswith("</script>"):
            if text in seen:
                continue
            seen.add(text)
        lines.append(line)
    return "".join(lines)


def _after_build(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = _dedupe_inline_scripts(text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _after_build)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
