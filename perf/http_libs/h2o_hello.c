/* perf/http_libs: the minimal handler compare.sh measures, on h2o (evloop). */
#include <h2o.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
static h2o_globalconf_t config; static h2o_context_t ctx; static h2o_accept_ctx_t actx;
static int hello(h2o_handler_t *self, h2o_req_t *req)
{
	(void)self;
	static h2o_generator_t gen = {NULL, NULL};
	req->res.status = 200; req->res.reason = "OK";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
	h2o_start_response(req, &gen);
	h2o_iovec_t body = h2o_iovec_init(H2O_STRLIT("{\"status\":\"ok\",\"op\":\"hold_seats\"}"));
	h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
	return 0;
}
static void on_accept(h2o_socket_t *l, const char *err)
{
	if (err) return;
	h2o_socket_t *s = h2o_evloop_socket_accept(l);
	if (s) h2o_accept(&actx, s);
}
int main(int argc, char **argv)
{
	(void)argc;
	h2o_config_init(&config);
	h2o_hostconf_t *hc = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
	h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h)); h->on_req = hello;
	h2o_context_init(&ctx, h2o_evloop_create(), &config);
	actx.ctx = &ctx; actx.hosts = config.hosts;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(0x7f000001)};
	if (bind(fd, (void*)&a, sizeof a) || listen(fd, 1024)) { perror("bind"); return 1; }
	h2o_socket_t *ls = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
	h2o_socket_read_start(ls, on_accept);
	while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0) ;
}
