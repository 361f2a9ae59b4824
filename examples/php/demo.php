<?php
/*
 * demo.php — hold, confirm and read a seat through the boxoffice HTTP API
 * with BoxofficeClient, checking every answer. Exits 0 when every answer is
 * the expected one, 1 (with the reason) on the first that is not, 2 on a
 * usage error.
 *
 *   php demo.php [URL]        URL: argv, else BOXOFFICE_URL, else
 *                             http://127.0.0.1:7480
 *   BOXOFFICE_TOKEN=...       the server's bearer token, when it has one
 *
 * It creates its own event (a fresh id each run, so it can run again
 * against the same server): 1 row of 10 seats and a pool of 100. Then:
 *  1. client A holds seats 3 and 4                      -> 200 ok, a hold id
 *  2. client B tries seat 4                             -> 409 taken
 *  3. client B tries to confirm A's hold                -> 404 not_found (not B's)
 *  4. client A confirms, then resends the same confirm  -> 200 ok; 200 replayed
 *  5. reads: availability, seats 3,4,5, the event image -> booked 2, free 8
 *  6. a batch: a pool hold and a read                   -> 200 [ok, ok]
 */

declare(strict_types=1);

require __DIR__ . '/BoxofficeClient.php';

function fail(string $why): never
{
    fwrite(STDERR, "demo: FAIL: $why\n");
    exit(1);
}

/** Asserts the HTTP status and reply status of $r; returns its body. */
function expect(BoxofficeReply $r, int $http, string $status, string $what): array
{
    if ($r->http !== $http || $r->status() !== $status) {
        fail(sprintf("%s: want HTTP %d %s, got HTTP %d %s", $what, $http, $status, $r->http,
            json_encode($r->body)));
    }
    echo "demo: $what: HTTP $http $status\n";
    return $r->body;
}

function check(bool $cond, string $what): void
{
    if (!$cond) {
        fail($what);
    }
}

if (($argc > 2) || (isset($argv[1]) && str_starts_with($argv[1], '-'))) {
    fwrite(STDERR, "usage: php demo.php [URL]\n");
    exit(2);
}
$url = $argv[1] ?? (getenv('BOXOFFICE_URL') ?: 'http://127.0.0.1:7480');

try {
    // Two callers with their own client ids; ids from the clock so that
    // runs do not collide on one server.
    $base = intdiv(hrtime(true), 1000) % 1000000000000;
    $a = new BoxofficeClient($url, $base + 1);
    $b = new BoxofficeClient($url, $base + 2);
    $event = random_int(1000000, PHP_INT_MAX >> 1);

    expect($a->createEvent($event, [
        'categories' => 1,
        'rows' => [['section' => 1, 'seats' => 10, 'category' => 0]],
        'pools' => [100],
    ]), 200, 'ok', "create event $event");

    // 1. Hold.
    $hold = expect($a->holdSeats($event, [3, 4], 60000), 200, 'ok', 'A holds seats 3,4');
    check(is_int($hold['hold'] ?? null) && $hold['hold'] > 0, 'the hold reply has a hold id');
    check(($hold['seats'] ?? null) === [3, 4], 'the hold reply lists seats 3,4');
    check(($hold['quantity'] ?? null) === 2, 'the hold reply has quantity 2');
    check(is_int($hold['expires_at_ms'] ?? null), 'the hold reply has expires_at_ms');
    $holdId = $hold['hold'];

    // 2. The seat is taken for anyone else.
    $taken = expect($b->holdSeats($event, [4], 60000), 409, 'taken', 'B tries seat 4');
    check(($taken['detail'] ?? null) === 'seat_unavailable' && ($taken['seats'] ?? null) === [4],
        'taken names seat 4 as seat_unavailable');

    // 3. A hold id is no key: another client cannot confirm it.
    expect($b->confirm($event, $holdId, 'stolen'), 404, 'not_found', "B confirms A's hold");

    // 4. Confirm, and resend the very same command: answered, not redone.
    $req = $a->newRequestId();
    $conf = expect($a->confirm($event, $holdId, 'order-1001', $req), 200, 'ok', 'A confirms');
    check(($conf['booking'] ?? null) === $holdId, 'the booking keeps the hold id');
    check(!isset($conf['replayed']), 'a first confirm is not replayed');
    $again = expect($a->confirm($event, $holdId, 'order-1001', $req), 200, 'ok', 'A resends');
    check(($again['replayed'] ?? null) === true, 'the resend is answered replayed');
    check(($again['booking'] ?? null) === $holdId, 'the resend names the same booking');

    // 5. Reads see the booking (the server replied ok: it is durable).
    $avail = expect($a->availability($event), 200, 'ok', 'availability')['avail'] ?? [];
    check(($avail['booked'] ?? null) === 2 && ($avail['free'] ?? null) === 8,
        'availability: 2 booked, 8 free, got ' . json_encode($avail));
    check(($avail['pools'][0]['free'] ?? null) === 100, 'the pool is untouched');
    $seats = expect($a->seats($event, [3, 4, 5]), 200, 'ok', 'seats 3,4,5');
    check(($seats['states'] ?? null) === ['booked', 'booked', 'free'],
        'seats 3,4,5 are booked, booked, free, got ' . json_encode($seats['states'] ?? null));
    $image = expect($a->state($event), 200, 'ok', 'event image');
    check(count($image['seats'] ?? []) === 10 && $image['seats'][3] === 'booked'
        && $image['seats'][0] === 'free', 'the image has 10 seats, 3 booked, 0 free');

    // 6. A batch: 200, one reply per command, in order.
    $batch = $a->batch([
        ['op' => 'hold_pool', 'event' => $event, 'pool' => 0, 'quantity' => 2, 'ttl_ms' => 60000],
        ['op' => 'query_seats', 'event' => $event, 'seats' => [0]],
    ]);
    check($batch->http === 200 && count($batch->body) === 2, 'a batch of 2 gets 2 replies, HTTP 200');
    check(($batch->body[0]['status'] ?? null) === 'ok' && ($batch->body[0]['pool'] ?? null) === 0,
        'the pool hold is ok: ' . json_encode($batch->body[0]));
    check(($batch->body[1]['states'] ?? null) === ['free'], 'seat 0 reads free');
    echo "demo: batch: HTTP 200 [ok, ok]\n";

    // Tidy up: give the pool tickets back.
    expect($a->release($event, $batch->body[0]['hold']), 200, 'ok', 'A releases the pool hold');
} catch (BoxofficeError $e) {
    fail($e->getMessage());
}
echo "demo: OK: held, confirmed and read event $event at $url\n";
exit(0);
