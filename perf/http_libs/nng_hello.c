/* perf/http_libs: the minimal handler compare.sh measures, on nng's HTTP server. */
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static const char BODY[] = "{\"status\":\"ok\",\"op\":\"hold_seats\"}";
static void handle(nng_aio *aio)
{
	nng_http_res *res;
	if (nng_http_res_alloc(&res) != 0) { nng_aio_finish(aio, NNG_ENOMEM); return; }
	nng_http_res_set_header(res, "Content-Type", "application/json");
	nng_http_res_copy_data(res, BODY, sizeof(BODY)-1);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}
int main(int argc, char **argv)
{
	char url[64]; snprintf(url, sizeof url, "http://127.0.0.1:%s", argv[1]);
	nng_url *u; nng_http_server *s; nng_http_handler *h;
	if (nng_url_parse(&u, url) || nng_http_server_hold(&s, u)) { fprintf(stderr,"hold\n"); return 1; }
	nng_http_handler_alloc(&h, "/", handle);
	nng_http_handler_set_tree(h);
	nng_http_server_add_handler(s, h);
	if (nng_http_server_start(s)) { fprintf(stderr,"start\n"); return 1; }
	pause();
}
