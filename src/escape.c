/* Target-controlled text (comm, thread names, file and symbol names, anything a plugin read from
 * target memory) made safe for a terminal or a log: a process can name itself "\e]0;owned\a" or
 * map a file whose name holds newlines. Every human renderer prints such strings through here.
 * Control bytes (C0, DEL, and the C1 controls U+0080..U+009F that some terminals obey) become
 * "\xNN" (newline, tab and carriage return "\n" "\t" "\r"), bytes that are not UTF-8 become "\xNN",
 * and the backslash itself is doubled, so the escaped text names the original bytes unambiguously.
 * Valid UTF-8 passes unchanged. */
#include <stdlib.h>
#include <string.h>

#include "render.h"

/* Length of the valid UTF-8 sequence at p (1..4), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p)
{
	size_t n;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* overlong and surrogate forms are not UTF-8 either */
	if (n == 3 && p[0] == 0xe0 && p[1] < 0xa0)
		return 0;
	if (n == 3 && p[0] == 0xed && p[1] >= 0xa0)
		return 0;
	if (n == 4 && p[0] == 0xf0 && p[1] < 0x90)
		return 0;
	if (n == 4 && p[0] == 0xf4 && p[1] >= 0x90)
		return 0;
	return n;
}

static const char hexdig[] = "0123456789abcdef";

/* Escape of one unit at p into out (at most 8 bytes); returns the bytes of p consumed. */
static size_t escape_unit(const unsigned char *p, char *out, size_t *out_len, bool keep_backslash)
{
	size_t k = 0;
	size_t n = utf8_seq(p);
	if (n == 1) {
		unsigned char c = p[0];
		if (c == '\\' && !keep_backslash) {
			out[k++] = '\\';
			out[k++] = '\\';
		} else if (c == '\n' || c == '\t' || c == '\r') {
			out[k++] = '\\';
			out[k++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
		} else if (c < 0x20 || c == 0x7f) {
			out[k++] = '\\';
			out[k++] = 'x';
			out[k++] = hexdig[c >> 4];
			out[k++] = hexdig[c & 15];
		} else {
			out[k++] = (char)c;
		}
		*out_len = k;
		return 1;
	}
	if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
		n = 0; /* a C1 control: escaped byte by byte */
	if (n == 0) {
		out[k++] = '\\';
		out[k++] = 'x';
		out[k++] = hexdig[p[0] >> 4];
		out[k++] = hexdig[p[0] & 15];
		*out_len = k;
		return 1;
	}
	memcpy(out, p, n);
	*out_len = n;
	return n;
}

bool md_needs_escape(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	while (*p) {
		char unit[8];
		size_t ul;
		size_t used = escape_unit(p, unit, &ul, false);
		if (ul != used || memcmp(unit, p, used) != 0)
			return true;
		p += used;
	}
	return false;
}

static size_t escape_text(const char *s, char *buf, size_t len, bool keep_backslash)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t need = 0, kept = 0;
	bool full = false;
	while (*p) {
		char unit[8];
		size_t ul;
		p += escape_unit(p, unit, &ul, keep_backslash);
		/* never cut an escape or a UTF-8 sequence in half */
		if (!full && need + ul < len) {
			memcpy(buf + need, unit, ul);
			kept = need + ul;
		} else {
			full = true;
		}
		need += ul;
	}
	if (len)
		buf[kept] = 0;
	return need;
}

size_t md_escape_text(const char *s, char *buf, size_t len)
{
	return escape_text(s, buf, len, false);
}

size_t md_escape_text_keep_backslash(const char *s, char *buf, size_t len)
{
	return escape_text(s, buf, len, true);
}

char *md_escape_dup(const char *s)
{
	size_t n = md_escape_text(s, NULL, 0);
	char *out = malloc(n + 1);
	if (out)
		md_escape_text(s, out, n + 1);
	return out;
}

/* A small ring of buffers so that several escaped strings fit in one printf. */
#define ESC_RING 8
static char *ring[ESC_RING];
static size_t ring_cap[ESC_RING];
static unsigned ring_next;

const char *md_esc(const char *s)
{
	if (!s)
		return "";
	if (!md_needs_escape(s))
		return s;
	unsigned i = ring_next++ % ESC_RING;
	size_t n = md_escape_text(s, NULL, 0);
	if (ring_cap[i] < n + 1) {
		char *b = realloc(ring[i], n + 1);
		if (!b)
			return "(unprintable)";
		ring[i] = b;
		ring_cap[i] = n + 1;
	}
	md_escape_text(s, ring[i], n + 1);
	return ring[i];
}
