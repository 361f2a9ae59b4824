<?php
/*
 * BoxofficeClient — a small client of the boxoffice HTTP/JSON API
 * (schemas/http.md) in plain PHP 8.2 with the curl extension: no framework,
 * no composer. The shape a web tier copies: one instance per worker, one
 * keep-alive connection reused for every request.
 *
 * Every mutating method takes a request id; without one it makes a fresh
 * id. A command answered 429 (throttled) or 503 (busy) was not applied and
 * is sent again, after Retry-After, with the SAME body, so the same
 * (client, request) pair: if an earlier attempt did get through, the server
 * answers it from its idempotency window ("replayed": true) instead of
 * applying it twice. The same holds after a broken connection: resend with
 * the same request id (resend()).
 *
 * Answers come back as BoxofficeReply (HTTP status + decoded body); a
 * status the caller did not expect is the caller's to judge: nothing here
 * throws on a 409 or 404, those are answers. BoxofficeError is thrown only
 * when there is no answer: transport failure, a body that is not JSON, or
 * retries exhausted.
 */

declare(strict_types=1);

final class BoxofficeError extends RuntimeException
{
}

final class BoxofficeReply
{
    /** @param array<mixed> $body the decoded JSON (object or array of objects) */
    public function __construct(
        public readonly int $http,
        public readonly array $body,
    ) {
    }

    /** The reply's "status" ("ok", "taken", ...); "" for a batch (an array). */
    public function status(): string
    {
        return is_string($this->body['status'] ?? null) ? $this->body['status'] : '';
    }

    public function ok(): bool
    {
        return $this->http === 200 && $this->status() === 'ok';
    }
}

final class BoxofficeClient
{
    /** @var \CurlHandle one handle: curl keeps its connection alive */
    private \CurlHandle $curl;
    private int $nextRequest;

    /**
     * @param string $baseUrl e.g. http://127.0.0.1:7480
     * @param int $clientId this caller's client id (1..2^63-1); holds belong to it
     * @param ?string $token the server's bearer token, or null (BOXOFFICE_TOKEN)
     * @param int $maxAttempts tries of one command under 429/503
     * @param float $timeoutS per HTTP request
     */
    public function __construct(
        private string $baseUrl,
        private int $clientId,
        private ?string $token = null,
        private int $maxAttempts = 5,
        private float $timeoutS = 5.0,
    ) {
        if ($clientId < 1) {
            throw new InvalidArgumentException('client id must be 1 or more');
        }
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->token ??= (getenv('BOXOFFICE_TOKEN') ?: null);
        $this->curl = curl_init();
        // Request ids must differ for every new command of a client and be
        // reused for a resend: start from the clock so that a restarted
        // worker does not reuse its predecessor's ids.
        $this->nextRequest = intdiv(hrtime(true), 1000);
    }

    /** A fresh request id for a new command. */
    public function newRequestId(): int
    {
        return $this->nextRequest++;
    }

    public function clientId(): int
    {
        return $this->clientId;
    }

    /* ---- Commands (POST /v1/command) ----------------------------------- */

    /** @param array<string,mixed> $map schemas/protocol.md section 3 */
    public function createEvent(int $event, array $map, ?int $request = null): BoxofficeReply
    {
        return $this->command(['op' => 'create_event', 'event' => $event, 'map' => $map], $request);
    }

    /** @param list<int> $seats */
    public function holdSeats(int $event, array $seats, int $ttlMs, ?int $request = null): BoxofficeReply
    {
        return $this->command(['op' => 'hold_seats', 'event' => $event, 'seats' => $seats,
            'ttl_ms' => $ttlMs], $request);
    }

    public function holdBest(int $event, int $category, int $quantity, int $ttlMs, ?int $request = null): BoxofficeReply
    {
        return $this->command(['op' => 'hold_best', 'event' => $event, 'category' => $category,
            'quantity' => $quantity, 'ttl_ms' => $ttlMs], $request);
    }

    public function confirm(int $event, int $hold, string $payref, ?int $request = null): BoxofficeReply
    {
        return $this->command(['op' => 'confirm', 'event' => $event, 'hold' => $hold,
            'payref' => $payref], $request);
    }

    public function release(int $event, int $hold, ?int $request = null): BoxofficeReply
    {
        return $this->command(['op' => 'release', 'event' => $event, 'hold' => $hold], $request);
    }

    /**
     * Sends one mutating command with this client's id and a request id
     * (fresh when null), retrying 429/503 with the same body.
     * @param array<string,mixed> $cmd
     */
    public function command(array $cmd, ?int $request = null): BoxofficeReply
    {
        $cmd['client'] = $this->clientId;
        $cmd['request'] = $request ?? $this->newRequestId();
        return $this->send('POST', '/v1/command', $cmd);
    }

    /**
     * Sends commands as one batch: each gets this client's id and a fresh
     * request id unless it has one. 200 with one reply per command.
     * @param list<array<string,mixed>> $cmds
     */
    public function batch(array $cmds): BoxofficeReply
    {
        foreach ($cmds as &$c) {
            if (!str_starts_with((string)($c['op'] ?? ''), 'query_')) {
                $c['client'] ??= $this->clientId;
                $c['request'] ??= $this->newRequestId();
            }
        }
        unset($c);
        return $this->send('POST', '/v1/batch', $cmds);
    }

    /* ---- Reads (GET) ------------------------------------------------------ */

    public function availability(int $event): BoxofficeReply
    {
        return $this->send('GET', "/v1/events/$event/availability");
    }

    /** @param list<int> $seats 1..16 seat numbers */
    public function seats(int $event, array $seats): BoxofficeReply
    {
        $list = implode(',', array_map('intval', $seats));
        return $this->send('GET', "/v1/events/$event/seats?seats=$list");
    }

    public function state(int $event): BoxofficeReply
    {
        return $this->send('GET', "/v1/events/$event/state");
    }

    /* ---- Transport ---------------------------------------------------------- */

    /**
     * One request, retried on 429/503 after Retry-After (or the body's
     * retry_after_ms) up to maxAttempts. The body is encoded once, so every
     * attempt sends the same bytes.
     * @param ?array<mixed> $body
     */
    public function send(string $method, string $path, ?array $body = null): BoxofficeReply
    {
        $json = $body === null ? null : json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
        for ($attempt = 1; ; $attempt++) {
            [$http, $retryAfterS, $text] = $this->once($method, $path, $json);
            $decoded = $this->decode($text, $http);
            if (($http !== 429 && $http !== 503) || $attempt >= $this->maxAttempts) {
                return new BoxofficeReply($http, $decoded);
            }
            // The body's hint is finer than the header's whole seconds.
            $ms = $decoded['retry_after_ms'] ?? null;
            $waitS = is_int($ms) && $ms > 0 ? $ms / 1000.0 : max(1, $retryAfterS ?? 1);
            usleep((int)(min($waitS, 10.0) * 1000000) + random_int(0, 50000));
        }
    }

    /** @return array{int, ?int, string} HTTP status, Retry-After seconds, body */
    private function once(string $method, string $path, ?string $json): array
    {
        $headers = ['Accept: application/json'];
        if ($json !== null) {
            $headers[] = 'Content-Type: application/json';
        }
        if ($this->token !== null && $this->token !== '') {
            $headers[] = 'Authorization: Bearer ' . $this->token;
        }
        $retryAfter = null;
        curl_reset($this->curl);
        curl_setopt_array($this->curl, [
            CURLOPT_URL => $this->baseUrl . $path,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT_MS => (int)($this->timeoutS * 1000),
            CURLOPT_HEADERFUNCTION => function ($ch, string $line) use (&$retryAfter): int {
                if (preg_match('/^Retry-After:\s*(\d+)\s*$/i', $line, $m)) {
                    $retryAfter = (int)$m[1];
                }
                return strlen($line);
            },
        ]);
        if ($json !== null) {
            curl_setopt($this->curl, CURLOPT_POSTFIELDS, $json);
        }
        $text = curl_exec($this->curl);
        if ($text === false) {
            throw new BoxofficeError("$method $path: " . curl_error($this->curl));
        }
        return [(int)curl_getinfo($this->curl, CURLINFO_RESPONSE_CODE), $retryAfter, (string)$text];
    }

    /** @return array<mixed> */
    private function decode(string $text, int $http): array
    {
        try {
            // Ids are 64-bit integers: PHP's int holds them; a larger
            // number (none is sent) would stay a string, never a float.
            $v = json_decode($text, true, 16, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
        } catch (JsonException $e) {
            throw new BoxofficeError("HTTP $http with a body that is not JSON: " . substr($text, 0, 120));
        }
        if (!is_array($v)) {
            throw new BoxofficeError("HTTP $http with a body that is not a JSON object or array");
        }
        return $v;
    }
}
