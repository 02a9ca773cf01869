package lowbit.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * The BPE merge loop in O(n log n): symbols in a doubly linked list, candidate pairs in a priority
 * queue ordered by merge rank, then position (the leftmost of equal ranks first), stale entries
 * skipped when popped. Same result as repeatedly merging the lowest-ranked adjacent pair, but a
 * whole unsplit segment (SentencePiece-style models have no pre-tokenizer) stays fast.
 */
final class BpeMerge {
    private BpeMerge() {}

    private record Candidate(int rank, int left, String leftSymbol, String rightSymbol) {}

    static List<String> apply(List<String> initial, Map<String, Integer> mergeRanks) {
        int n = initial.size();
        if (n < 2) return initial;
        String[] symbol = initial.toArray(new String[0]);
        int[] prev = new int[n];
        int[] next = new int[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        PriorityQueue<Candidate> queue = new PriorityQueue<>((a, b) -> a.rank != b.rank ? Integer.compare(a.rank, b.rank) : Integer.compare(a.left, b.left));
        for (int i = 0; i + 1 < n; i++) offer(queue, mergeRanks, i, symbol[i], symbol[i + 1]);
        while (!queue.isEmpty()) {
            Candidate c = queue.poll();
            int l = c.left;
            int r = next[l];
            // stale: the left symbol was merged away or changed, or its neighbour is no longer the pair's right half
            if (symbol[l] == null || r < 0 || !symbol[l].equals(c.leftSymbol) || !symbol[r].equals(c.rightSymbol)) continue;
            symbol[l] = c.leftSymbol + c.rightSymbol;
            symbol[r] = null;
            next[l] = next[r];
            if (next[r] >= 0) prev[next[r]] = l;
            if (prev[l] >= 0) offer(queue, mergeRanks, prev[l], symbol[prev[l]], symbol[l]);
            if (next[l] >= 0) offer(queue, mergeRanks, l, symbol[l], symbol[next[l]]);
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i >= 0; i = next[i]) out.add(symbol[i]);
        return out;
    }

    private static void offer(PriorityQueue<Candidate> queue, Map<String, Integer> ranks, int left, String a, String b) {
        Integer rank = ranks.get(a + " " + b);
        if (rank != null) queue.add(new Candidate(rank, left, a, b));
    }
}
