package lowbit.calibrate;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * What a method trains on one block: the hooks that build its parameters into the block, the
 * parameter groups (empty: nothing to learn, the block is only evaluated), and the loss.
 */
public record BlockSetup(BlockHooks hooks, List<ParamGroup> groups, BlockLoss loss) {
    public BlockSetup {
        groups = List.copyOf(groups);
        Set<String> names = new HashSet<>();
        for (Param p : params(groups)) {
            if (!names.add(p.name())) throw new IllegalArgumentException("two parameters named " + p.name());
        }
    }

    /** Every parameter, group by group. */
    public List<Param> params() {
        return params(groups);
    }

    private static List<Param> params(List<ParamGroup> groups) {
        List<Param> all = new ArrayList<>();
        for (ParamGroup g : groups) all.addAll(g.params());
        return all;
    }
}
