// A minimal code highlighter: comments, strings, numbers, keywords, literals and called names.
//
// It only creates <span class="tok-..."> elements holding text nodes, so highlighting untrusted code
// cannot inject markup. Languages are data in LANGUAGES (with aliases); unknown ones get the generic
// rules (strings and numbers only).

const words = (text) => new Set(text.split(/\s+/).filter(Boolean));

const C_LIKE = {
  line: ["//"],
  block: [["/*", "*/"]],
  strings: ['"', "'"],
};

const LANGUAGES = {
  python: {
    line: ["#"],
    block: [],
    strings: ['"""', "'''", '"', "'"],
    keywords: words(`and as assert async await break class continue def del elif else except finally for
      from global if import in is lambda match case nonlocal not or pass raise return try while with yield`),
    literals: words("True False None self cls"),
  },
  javascript: {
    ...C_LIKE,
    strings: ['"', "'", "`"],
    keywords: words(`async await break case catch class const continue debugger default delete do else export
      extends finally for from function if import in instanceof let new of return static super switch this
      throw try typeof var void while with yield type interface enum implements readonly`),
    literals: words("true false null undefined NaN Infinity"),
  },
  json: { line: [], block: [], strings: ['"'], keywords: words(""), literals: words("true false null") },
  bash: {
    line: ["#"],
    block: [],
    strings: ['"', "'"],
    keywords: words(`if then else elif fi for while until do done case esac function in return export local
      echo exit set unset source cd`),
    literals: words("true false"),
  },
  c: {
    ...C_LIKE,
    keywords: words(`auto break case char const continue default do double else enum extern float for goto if
      inline int long register return short signed sizeof static struct switch typedef union unsigned void
      volatile while class namespace template typename public private protected virtual override new delete
      using bool constexpr nullptr auto include define`),
    literals: words("true false NULL nullptr"),
  },
  rust: {
    ...C_LIKE,
    keywords: words(`as async await break const continue crate dyn else enum extern fn for if impl in let loop
      match mod move mut pub ref return static struct super trait type unsafe use where while Self self`),
    literals: words("true false None Some Ok Err"),
  },
  go: {
    ...C_LIKE,
    strings: ['"', "'", "`"],
    keywords: words(`break case chan const continue default defer else fallthrough for func go goto if import
      interface map package range return select struct switch type var`),
    literals: words("true false nil iota"),
  },
  java: {
    ...C_LIKE,
    keywords: words(`abstract assert boolean break byte case catch char class const continue default do double
      else enum extends final finally float for if implements import instanceof int interface long native new
      package private protected public return short static super switch synchronized this throw throws try
      void volatile while var record`),
    literals: words("true false null"),
  },
  sql: {
    line: ["--"],
    block: [["/*", "*/"]],
    strings: ["'", '"'],
    caseless: true,
    keywords: words(`select from where and or not insert into values update set delete create table drop alter
      index join left right inner outer on group by order having limit offset as distinct union all case when
      then else end primary key foreign references null is in like between exists`),
    literals: words("true false null"),
  },
  yaml: {
    line: ["#"], block: [], strings: ['"', "'"], keywords: words(""), literals: words("true false null"),
  },
  css: {
    line: [], block: [["/*", "*/"]], strings: ['"', "'"], keywords: words("important"), literals: words(""),
  },
  html: { line: [], block: [["<!--", "-->"]], strings: ['"', "'"], keywords: words(""), literals: words("") },
};

const ALIASES = {
  py: "python", python3: "python", js: "javascript", ts: "javascript", typescript: "javascript",
  jsx: "javascript", tsx: "javascript", mjs: "javascript", sh: "bash", shell: "bash", zsh: "bash",
  console: "bash", cpp: "c", "c++": "c", h: "c", hpp: "c", cc: "c", cs: "java", csharp: "java",
  kotlin: "java", rs: "rust", golang: "go", yml: "yaml", toml: "yaml", ini: "yaml", xml: "html",
  svg: "html", scss: "css", postgres: "sql", mysql: "sql", sqlite: "sql", jsonc: "javascript",
};

const GENERIC = { line: [], block: [], strings: ['"', "'"], keywords: words(""), literals: words("") };
const NUMBER = /(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[a-zA-Z]*/y;
const IDENT = /[A-Za-z_$][\w$]*/y;
const MAX_HIGHLIGHT = 200_000; // longer code is shown plain: highlighting it would stall the page

export function languageFor(name) {
  const key = (name || "").toLowerCase();
  return LANGUAGES[key] || LANGUAGES[ALIASES[key]] || GENERIC;
}

function readString(code, i, quote) {
  let j = i + quote.length;
  while (j < code.length) {
    if (code[j] === "\\") {
      j += 2;
      continue;
    }
    if (code.startsWith(quote, j)) return j + quote.length;
    if (code[j] === "\n" && quote.length === 1 && quote !== "`") return j;
    j++;
  }
  return code.length;
}

function scanSpecial(code, i, lang) {
  for (const [open, close] of lang.block) {
    if (code.startsWith(open, i)) {
      const end = code.indexOf(close, i + open.length);
      return ["com", end === -1 ? code.length : end + close.length];
    }
  }
  for (const marker of lang.line) {
    if (code.startsWith(marker, i)) {
      const end = code.indexOf("\n", i);
      return ["com", end === -1 ? code.length : end];
    }
  }
  for (const quote of lang.strings) {
    if (code.startsWith(quote, i)) return ["str", readString(code, i, quote)];
  }
  return null;
}

function scanWord(code, i, lang) {
  if (/\d/.test(code[i]) || (code[i] === "." && /\d/.test(code[i + 1] || ""))) {
    if (/[\w$]/.test(code[i - 1] || "")) return null;
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(code);
    if (m) return ["num", i + m[0].length];
  }
  IDENT.lastIndex = i;
  const m = /[\w$]/.test(code[i - 1] || "") ? null : IDENT.exec(code);
  if (!m) return null;
  const word = m[0];
  const key = lang.caseless ? word.toLowerCase() : word;
  const end = i + word.length;
  if (lang.keywords.has(key)) return ["kw", end];
  if (lang.literals.has(key)) return ["lit", end];
  if (/^\s*\(/.test(code.slice(end, end + 40))) return ["fn", end];
  return ["plain", end];
}

/** Fill ``target`` with ``code``, highlighted for ``langName``, as spans and text nodes only. */
export function highlightInto(target, code, langName) {
  target.replaceChildren();
  if (code.length > MAX_HIGHLIGHT) {
    target.textContent = code;
    return;
  }
  const lang = languageFor(langName);
  let plain = "";
  const flush = () => {
    if (plain) target.appendChild(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < code.length) {
    const found = scanSpecial(code, i, lang) || scanWord(code, i, lang);
    if (!found) {
      plain += code[i];
      i++;
      continue;
    }
    const [kind, end] = found;
    const text = code.slice(i, end);
    if (kind === "plain") {
      plain += text;
    } else {
      flush();
      const span = document.createElement("span");
      span.className = `tok-${kind}`;
      span.textContent = text;
      target.appendChild(span);
    }
    i = end;
  }
  flush();
}
