%% Erlang/OTP hot code loading and gen_server code_change, timed for the side-by-side update
%% latency comparison with Molt (benches/erlang/run.sh runs this, then the Molt side).
%%
%% Follows the same method as ../shared/peers/erlang-reload/reload_bench.erl (the reference
%% measurement quoted earlier in docs/benchmarks.md); this copy is ours: the sizes, the
%% repetitions and the state size are parameters, N = 10,000 is added (with fewer loads, the
%% compile of each version being the slow part), the state part is repeated and its median
%% taken, and every result is printed as one machine-readable line.
%%
%% Part 1 (hot load): for each N a module with N exported functions
%%     fI(X) -> X * I + V.        (V = the version number: every body changes between versions)
%% plus loop/2 is generated as source text and compiled IN MEMORY with compile:forms/2 (all
%% versions compiled before any timing; the compile is reported apart). A process spins in
%% loop/2, which calls f1/1 and re-enters itself through a fully qualified call (Mod:loop/2):
%% that call is Erlang's update point. For each new version:
%%   purge   code:soft_purge/1 of the old-old version (no process runs it)
%%   load    code:load_binary/3 of the new version (reads and verifies the BEAM binary,
%%           loads it, JIT-compiles it, switches the export entries)
%%   switch  from the START of load_binary until the spinning process runs the new version
%%           (its first iteration in the new code sends a message stamped with monotonic
%%           time). Measured from the start because the export entries are switched inside
%%           load_binary: the process often runs new code before load_binary has returned.
%% The spinning process is never stopped: it runs the old code while the new one loads.
%%
%% Part 2 (state transform): a gen_server (generated and compiled in memory) holds a map of
%% S items #{K => {K}}. Version 2 changes each value {V} -> {V, 0} in code_change/3. Timed:
%% the OTP release-handler sequence sys:suspend, code:load_binary, sys:change_code (runs
%% code_change/3 inside the server), sys:resume, and the first call answered by the new
%% version. Repeated StateReps times (a fresh server each time); medians reported.
%%
%% Run:  erlc -o $BEAM reload_bench.erl
%%       erl -noshell -pa $BEAM -run reload_bench main Sizes Reps S StateReps -s erlang halt
%% Arguments (all optional, in this order; defaults in brackets):
%%   Sizes      comma-separated N list             [10,100,1000,10000]
%%   Reps       loads per N for N =< 1000          [30]; N > 1000 gets max(3, Reps div 6)
%%   S          state size (items in the map)      [1000000]
%%   StateReps  repetitions of part 2              [3]
%% Output: `# ...` comment lines, then per N
%%   hot_load N=.. reps=.. beam_kib=.. compile_us_median=.. purge_us_median=..
%%            load_us_median=.. load_us_min=.. load_us_max=..
%%            switch_us_median=.. switch_us_min=.. switch_us_max=..
%% and for the state
%%   state_transform S=.. reps=.. build_us=.. suspend_us=.. load_binary_us=.. change_code_us=..
%%            resume_us=.. first_call_us=.. total_update_us=.. per_item_ns=.. heap_mib=..
%% (one line each; medians over the repetitions, min/max where named).
-module(reload_bench).
-export([main/0, main/1]).

main() -> main([]).

main(Args) ->
    Defaults = ["10,100,1000,10000", "30", "1000000", "3"],
    [SizesA, RepsA, SA, SRepsA] = Args ++ lists:nthtail(min(length(Args), 4), Defaults),
    Sizes = [list_to_integer(X) || X <- string:lexemes(SizesA, ",")],
    Reps = list_to_integer(RepsA),
    StateSize = list_to_integer(SA),
    StateReps = list_to_integer(SRepsA),
    io:format("# OTP ~s, ERTS ~s, emu_flavor ~p, schedulers ~p~n",
              [erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(emu_flavor), erlang:system_info(schedulers_online)]),
    lists:foreach(fun(N) -> hot_load(N, reps_for(N, Reps)) end, Sizes),
    case StateSize > 0 andalso StateReps > 0 of
        true -> state_transform(StateSize, StateReps);
        false -> ok
    end,
    ok.

reps_for(N, Reps) when N =< 1000 -> Reps;
reps_for(_, Reps) -> max(3, Reps div 6).

%% ---------------------------------------------------------------- part 1

hot_load(N, Reps) ->
    Mod = list_to_atom("hot_" ++ integer_to_list(N)),
    %% compile Reps+1 versions up front, timing each compile
    Compiled = [begin
                    Forms = forms(module_src(Mod, N, V)),
                    {Tc, {ok, Mod, Bin}} = timer:tc(compile, forms, [Forms, [binary, return_errors]]),
                    {V, Bin, Tc}
                end || V <- lists:seq(1, Reps + 1)],
    [{1, Bin1, _} | Rest] = Compiled,
    {module, Mod} = code:load_binary(Mod, "hot.erl", Bin1),
    Self = self(),
    Pid = spawn(fun() -> Mod:loop(Self, 0) end),
    receive {switched, Pid, 1, _} -> ok end,
    Rows = [one_load(Mod, Pid, V, Bin) || {V, Bin, _} <- Rest],
    exit(Pid, kill),
    timer:sleep(10),
    code:purge(Mod),
    code:delete(Mod),
    code:purge(Mod),
    CompileUs = [Tc || {_, _, Tc} <- Compiled],
    PurgeUs = [P || {P, _, _} <- Rows],
    LoadUs = [L || {_, L, _} <- Rows],
    SwitchUs = [S || {_, _, S} <- Rows],
    io:format("hot_load N=~w reps=~w beam_kib=~.1f compile_us_median=~w purge_us_median=~w"
              " load_us_median=~w load_us_min=~w load_us_max=~w"
              " switch_us_median=~w switch_us_min=~w switch_us_max=~w~n",
              [N, Reps, byte_size(Bin1) / 1024, median(CompileUs), median(PurgeUs),
               median(LoadUs), lists:min(LoadUs), lists:max(LoadUs),
               median(SwitchUs), lists:min(SwitchUs), lists:max(SwitchUs)]).

one_load(Mod, Pid, V, Bin) ->
    %% the process already runs version V-1; version V-2 is "old" code nobody runs
    T0 = erlang:monotonic_time(),
    true = code:soft_purge(Mod),
    T1 = erlang:monotonic_time(),
    {module, Mod} = code:load_binary(Mod, "hot.erl", Bin),
    T2 = erlang:monotonic_time(),
    receive {switched, Pid, V, T3} -> ok end,
    {us(T1 - T0), us(T2 - T1), us(T3 - T1)}.

%% Generated module: N exported functions fI/1 plus loop/2, the update point.
module_src(Mod, N, V) ->
    Funs = [io_lib:format("f~w(X) -> X * ~w + ~w.~n", [I, I, V]) || I <- lists:seq(1, N)],
    Exports = string:join(["f" ++ integer_to_list(I) ++ "/1" || I <- lists:seq(1, N)], ", "),
    [io_lib:format("-module(~w).~n", [Mod]),
     io_lib:format("-export([loop/2, ~s]).~n", [Exports]),
     io_lib:format("loop(Parent, Seen) ->~n"
                   "    case Seen of~n"
                   "        ~w -> ok;~n"
                   "        _ -> Parent ! {switched, self(), ~w, erlang:monotonic_time()}~n"
                   "    end,~n"
                   "    _ = f1(Seen),~n"
                   "    ~w:loop(Parent, ~w).~n", [V, V, Mod, V])
     | Funs].

%% ---------------------------------------------------------------- part 2

state_transform(S, Reps) ->
    Mod = state_srv,
    {ok, Mod, B1} = compile:forms(forms(srv_src(Mod, 1)), [binary, return_errors]),
    {ok, Mod, B2} = compile:forms(forms(srv_src(Mod, 2)), [binary, return_errors]),
    Rows = [one_state(Mod, B1, B2, S) || _ <- lists:seq(1, Reps)],
    Col = fun(I) -> median([element(I, R) || R <- Rows]) end,
    Change = Col(4),
    io:format("state_transform S=~w reps=~w build_us=~w suspend_us=~w load_binary_us=~w"
              " change_code_us=~w change_code_us_min=~w change_code_us_max=~w"
              " resume_us=~w first_call_us=~w total_update_us=~w total_update_us_min=~w"
              " total_update_us_max=~w per_item_ns=~.1f heap_mib=~.1f~n",
              [S, Reps, Col(1), Col(2), Col(3),
               Change, lists:min([element(4, R) || R <- Rows]),
               lists:max([element(4, R) || R <- Rows]),
               Col(5), Col(6), Col(7), lists:min([element(7, R) || R <- Rows]),
               lists:max([element(7, R) || R <- Rows]),
               Change * 1000 / S, Col(8) / 1048576]).

one_state(Mod, B1, B2, S) ->
    code:purge(Mod),
    code:delete(Mod),
    code:purge(Mod),
    {module, Mod} = code:load_binary(Mod, "state_srv.erl", B1),
    {Tinit, {ok, Pid}} = timer:tc(gen_server, start, [Mod, S, []]),
    {1, S} = gen_server:call(Pid, info, infinity),
    T0 = erlang:monotonic_time(),
    ok = sys:suspend(Pid),
    T1 = erlang:monotonic_time(),
    {module, Mod} = code:load_binary(Mod, "state_srv.erl", B2),
    T2 = erlang:monotonic_time(),
    ok = sys:change_code(Pid, Mod, 1, [], infinity),
    T3 = erlang:monotonic_time(),
    ok = sys:resume(Pid),
    T4 = erlang:monotonic_time(),
    {2, S} = gen_server:call(Pid, info, infinity),
    T5 = erlang:monotonic_time(),
    {memory, Mem} = erlang:process_info(Pid, memory),
    gen_server:stop(Pid),
    erlang:garbage_collect(),
    {Tinit, us(T1 - T0), us(T2 - T1), us(T3 - T2), us(T4 - T3), us(T5 - T4), us(T5 - T0), Mem}.

srv_src(Mod, 1) ->
    [io_lib:format("-module(~w).~n", [Mod]),
     "-behaviour(gen_server).\n",
     "-export([init/1, handle_call/3, handle_cast/2, code_change/3]).\n",
     "init(S) -> {ok, maps:from_list([{K, {K}} || K <- lists:seq(1, S)])}.\n",
     "handle_call(info, _From, M) -> {reply, {1, map_size(M)}, M}.\n",
     "handle_cast(_, M) -> {noreply, M}.\n",
     "code_change(_Old, M, _Extra) -> {ok, M}.\n"];
srv_src(Mod, 2) ->
    [io_lib:format("-module(~w).~n", [Mod]),
     "-behaviour(gen_server).\n",
     "-export([init/1, handle_call/3, handle_cast/2, code_change/3]).\n",
     "init(S) -> {ok, maps:from_list([{K, {K, 0}} || K <- lists:seq(1, S)])}.\n",
     "handle_call(info, _From, M) -> {_, 0} = maps:get(1, M), {reply, {2, map_size(M)}, M}.\n",
     "handle_cast(_, M) -> {noreply, M}.\n",
     "code_change(1, M, _Extra) -> {ok, maps:map(fun(_K, {V}) -> {V, 0} end, M)}.\n"].

%% ---------------------------------------------------------------- helpers

%% source text (iolist of complete forms) -> abstract forms
forms(Src) ->
    {ok, Toks, _} = erl_scan:string(lists:flatten(io_lib:format("~s", [Src]))),
    split_forms(Toks, [], []).

split_forms([], [], Acc) -> lists:reverse(Acc);
split_forms([{dot, _} = D | T], Cur, Acc) ->
    {ok, F} = erl_parse:parse_form(lists:reverse([D | Cur])),
    split_forms(T, [], [F | Acc]);
split_forms([Tok | T], Cur, Acc) -> split_forms(T, [Tok | Cur], Acc).

us(NativeDelta) -> erlang:convert_time_unit(NativeDelta, native, microsecond).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
