// A CPU-bound loop and nothing else: counts the primes below a limit by trial division. Built
// as clang builds any module (no Ferry header, no Asyncify); Ferry makes it movable when a node
// loads it, and Benchmarks/migration.sh measures what that costs.
__attribute__((export_name("count_primes"))) int count_primes(int limit) {
    int count = 0;
    for (int n = 2; n < limit; n++) {
        int prime = 1;
        for (int d = 2; d * d <= n; d++) {
            if (n % d == 0) {
                prime = 0;
                break;
            }
        }
        count += prime;
    }
    return count;
}
