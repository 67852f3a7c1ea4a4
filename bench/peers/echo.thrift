// The Thrift peer of the benchmark: the same Item and echo as protocol/echo.avdl and bench/echo.proto.
// bench/peers/thrift.ts compiles it with `thrift --gen js:node` at bench time (never committed).
namespace js avrpc.echo

struct Item {
  1: i64 id,
  2: string name,
  3: list<string> tags,
  4: double score,
  5: binary blob,
}

service Echo {
  Item echo(1: Item item),
}
