/*
 * json.c — see json.h for the escaping rule.
 */
#include "base/json.h"

#include <string.h>

void bo_json_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c >= 0x20 && c < 0x7f) {
			fputc(c, f);
		} else {
			fprintf(f, "\\u%04x", c);
		}
	}
	fputc('"', f);
}

void bo_json_cstr(FILE *f, const char *s) { bo_json_str(f, s, strlen(s)); }
