%% The kv_server's v1 protocol (examples/kv_server/v1.molt) on Erlang/OTP gen_tcp, a peer for
%% benches/kv/run.sh: one process per connection, one line per request, one line per reply.
%%
%%   SET key value -> OK; GET key -> VALUE value | MISSING; QUIT -> BYE (then closed);
%%   a known command with the wrong number of words -> ERROR usage: ...; an empty line ->
%%   ERROR empty request; anything else -> ERROR unknown command: X
%%
%% Entries are {entry, Value} in a public ETS table (the "global map"). Each connection's loop
%% re-enters itself through a fully qualified call, ?MODULE:session/1, between two requests:
%% Erlang's update point, where a process moves to the newest loaded version of the module.
%%
%% Hot loading under load: with Reloads > 0, a process recompiles this file every IntervalMs
%% with a changed constant (-define(GEN, I), returned by gen/0), and loads it with
%% code:load_binary/3 while the clients talk, as benches/erlang/reload_bench.erl does; before
%% each load it waits (bounded) until code:soft_purge/1 succeeds, i.e. no process still runs
%% the version before the current one (a hard purge would kill such a process, and its
%% connection with it); so every loop here (connections, the acceptor, the reloader itself)
%% re-enters through a fully qualified call. Reload I starts (compiling) at I * IntervalMs
%% after the start, and prints `reload I compile_us=.. purge_us=.. load_us=.. purge_tries=..`.
%%
%% Run: erlc kv_server.erl && erl -noshell -run kv_server main 127.0.0.1:0 [Reloads IntervalMs]
%% The first line printed is `listening on 127.0.0.1:PORT`.
-module(kv_server).
-export([main/1, session/1, acceptor/1, gen/0, handle/1, reloader/3]).

-ifndef(GEN).
-define(GEN, 0).
-endif.

gen() -> ?GEN.

main(Args) ->
    {Addr, Reloads, Interval} =
        case Args of
            [A, R, I | _] -> {A, list_to_integer(R), list_to_integer(I)};
            [A] -> {A, 0, 0};
            [] -> {"127.0.0.1:7070", 0, 0}
        end,
    {Host, Port} = parse_addr(Addr),
    ets:new(kv_store, [set, public, named_table, {read_concurrency, true}, {write_concurrency, true}]),
    {ok, L} = gen_tcp:listen(Port, [binary, {packet, line}, {active, false}, {reuseaddr, true},
                                    {ip, Host}, {nodelay, true}, {backlog, 128},
                                    {buffer, 65536}]),
    {ok, Real} = inet:port(L),
    io:format("listening on ~s:~w~n", [inet:ntoa(Host), Real]),
    case Reloads > 0 of
        true ->
            T0 = erlang:monotonic_time(millisecond),
            spawn(fun() -> ?MODULE:reloader(1, Reloads, {T0, Interval}) end);
        false -> ok
    end,
    acceptor(L).

parse_addr(Addr) ->
    Colon = string:rchr(Addr, $:),
    {ok, Ip} = inet:parse_ipv4_address(string:substr(Addr, 1, Colon - 1)),
    {Ip, list_to_integer(string:substr(Addr, Colon + 1))}.

%% Accepts with a timeout, so that the acceptor too re-enters the newest version regularly
%% (a process left in a version two loads old would hold the next load back).
acceptor(L) ->
    case gen_tcp:accept(L, 100) of
        {ok, S} ->
            Pid = spawn(fun() -> receive go -> ?MODULE:session(S) end end),
            ok = gen_tcp:controlling_process(S, Pid),
            Pid ! go,
            ?MODULE:acceptor(L);
        {error, timeout} ->
            ?MODULE:acceptor(L);
        {error, Reason} ->
            io:format("accept: ~p~n", [Reason]),
            ?MODULE:acceptor(L)
    end.

%% One client's connection; the fully qualified tail call is the update point.
session(S) ->
    case gen_tcp:recv(S, 0) of
        {ok, Line} ->
            Reply = try handle(Line) catch _:_ -> <<"ERROR bad request">> end,
            case gen_tcp:send(S, [Reply, $\n]) of
                ok when Reply =:= <<"BYE">> -> gen_tcp:close(S);
                ok -> ?MODULE:session(S);
                {error, _} -> gen_tcp:close(S)
            end;
        {error, _} ->
            gen_tcp:close(S)
    end.

handle(Line) ->
    Words = binary:split(string:trim(Line), <<" ">>, [global]),
    [Word | Rest] = Words,
    N = length(Words),
    case string:uppercase(Word) of
        <<>> -> <<"ERROR empty request">>;
        <<"SET">> when N < 3 -> <<"ERROR usage: SET key value">>;
        <<"SET">> ->
            [K | Vs] = Rest,
            ets:insert(kv_store, {K, {entry, iolist_to_binary(lists:join(<<" ">>, Vs))}}),
            <<"OK">>;
        <<"GET">> when N =/= 2 -> <<"ERROR usage: GET key">>;
        <<"GET">> ->
            case ets:lookup(kv_store, hd(Rest)) of
                [{_, {entry, V}}] -> <<"VALUE ", V/binary>>;
                [] -> <<"MISSING">>
            end;
        <<"QUIT">> -> <<"BYE">>;
        _ -> <<"ERROR unknown command: ", Word/binary>>
    end.

%% ---------------------------------------------------------------- hot loading

reloader(I, Reloads, _Interval) when I > Reloads ->
    io:format("reloads done: ~w~n", [Reloads]);
reloader(I, Reloads, {T0, Interval}) ->
    timer:sleep(max(0, T0 + I * Interval - erlang:monotonic_time(millisecond))),
    {CompileUs, {ok, ?MODULE, Bin}} =
        timer:tc(compile, file, [?FILE, [binary, return_errors, {d, 'GEN', I}]]),
    {PurgeUs, Tries} = timer:tc(fun() -> soft_purge(1) end),
    case timer:tc(code, load_binary, [?MODULE, ?FILE, Bin]) of
        {LoadUs, {module, ?MODULE}} ->
            io:format("reload ~w compile_us=~w purge_us=~w load_us=~w purge_tries=~w gen=~w~n",
                      [I, CompileUs, PurgeUs, LoadUs, Tries, ?MODULE:gen()]);
        {_, {error, Reason}} ->
            %% not_purged: a process still ran the version before the current one.
            io:format("reload ~w failed: ~p (purge_tries=~w)~n", [I, Reason, Tries])
    end,
    ?MODULE:reloader(I + 1, Reloads, {T0, Interval}).

%% Waits (at most 1000 tries, 1 ms apart) until no process runs the old version.
soft_purge(Try) when Try >= 1000 -> Try;
soft_purge(Try) ->
    case code:soft_purge(?MODULE) of
        true -> Try;
        false -> timer:sleep(1), soft_purge(Try + 1)
    end.
